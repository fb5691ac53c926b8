#!/usr/bin/env python3
"""Builds the wasm packages exactly as wasm-pack.toml says: cargo → wasm-opt → wasm-bindgen.

Two builds (wasm-pack.toml): `baseline` (stable, SIMD128, one thread → www/pkg/) and `threads`
(pinned nightly + build-std, atomics, relaxed SIMD, CPU only → www/pkg-mt/). Both by default;
`--only baseline` or `--only threads` builds one.

No tool downloads anything: wasm-bindgen-cli is installed by `make setup` at the same
version as the crate's wasm-bindgen, wasm-opt comes from Debian's binaryen, the nightly
toolchain is installed by `make setup`. Prints each build's time and .wasm size (raw, gzip).
"""
import argparse
import gzip
import os
import pathlib
import shutil
import subprocess
import sys
import time
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILDS = ("baseline", "threads")


def run(cmd, env=None):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def section(cfg, name, build):
    """The `[name]` table of wasm-pack.toml, overridden by `[name.threads]` for that build."""
    base = {k: v for k, v in cfg[name].items() if not isinstance(v, dict)}
    if build != "baseline":
        base.update(cfg[name].get(build, {}))
    return base


def build_one(cfg, build):
    b, bg, opt = (section(cfg, n, build) for n in ("build", "bindgen", "wasm-opt"))
    t0 = time.monotonic()
    env = dict(os.environ)
    env["RUSTFLAGS"] = " ".join(b.get("rustflags", []))
    cmd = ["cargo"]
    if b.get("toolchain"):
        cmd.append(f"+{b['toolchain']}")
    # `cargo rustc` when the final crate has linker arguments: they reach its link only.
    cmd += ["rustc" if b.get("link-args") else "build", "--lib", "--target", b["target"], "--profile", b["profile"]]
    if b.get("build-std"):
        cmd.append("-Zbuild-std=" + ",".join(b["build-std"]))
    if b.get("no-default-features"):
        cmd.append("--no-default-features")
    if b.get("features"):
        cmd += ["--features", ",".join(b["features"])]
    # A target dir per build: different RUSTFLAGS or toolchains would otherwise rebuild each other.
    target_dir = ROOT / ("target/wasm" if build == "baseline" else f"target/wasm-{build}")
    cmd += ["--target-dir", str(target_dir)]
    if b.get("link-args"):
        cmd += ["--", *(a for arg in b["link-args"] for a in ("-C", f"link-arg={arg}"))]
    run(cmd, env)
    profile_dir = "release" if b["profile"] == "release" else b["profile"]
    wasm = target_dir / b["target"] / profile_dir / "hearth.wasm"
    # wasm-opt runs on cargo's output, before wasm-bindgen: Debian's binaryen (108)
    # rewrites the externref table that wasm-bindgen emits and the module then fails to
    # instantiate ("WebAssembly.Table.set(): Argument 1 is invalid for table").
    if opt.get("enabled"):
        if not shutil.which("wasm-opt"):
            sys.exit("wasm-opt not found: run `make setup` (Debian package binaryen)")
        optimized = wasm.with_name("hearth.opt.wasm")
        run(["wasm-opt", *opt["flags"], str(wasm), "-o", str(optimized)])
        wasm = optimized
    out = ROOT / bg["out-dir"]
    out.mkdir(parents=True, exist_ok=True)
    run(["wasm-bindgen", "--target", bg["target"], "--out-dir", str(out), "--out-name", bg["out-name"], str(wasm)])
    override_snippets(out, bg.get("snippet-overrides", []))
    final = out / f"{bg['out-name']}_bg.wasm"
    raw = final.stat().st_size
    gz = len(gzip.compress(final.read_bytes(), 9))
    secs = time.monotonic() - t0
    print(f"{build}: {final.relative_to(ROOT)}: {raw / 1e6:.2f} MB raw, {gz / 1e6:.2f} MB gzip, built in {secs:.0f} s", flush=True)
    return f"{build}: {raw / 1e6:.2f} MB raw, {gz / 1e6:.2f} MB gzip, {secs:.0f} s"


def override_snippets(out, overrides):
    """Writes our files over generated JS snippets (wasm-pack.toml `snippet-overrides`:
    [glob under <out-dir>/snippets/, replacement]); a glob that matches nothing is an error."""
    for pattern, replacement in overrides:
        targets = sorted((out / "snippets").glob(pattern))
        if not targets:
            sys.exit(f"snippet-overrides: nothing under {out}/snippets matches {pattern}")
        for t in targets:
            shutil.copyfile(ROOT / replacement, t)
            print(f"{t.relative_to(ROOT)}: replaced by {replacement}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=BUILDS, help="build just this one (default: both)")
    args = ap.parse_args()
    cfg = tomllib.loads((ROOT / "wasm-pack.toml").read_text())
    lines = [build_one(cfg, build) for build in ([args.only] if args.only else BUILDS)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
