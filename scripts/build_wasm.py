#!/usr/bin/env python3
"""Builds the wasm package exactly as wasm-pack.toml says: cargo → wasm-bindgen → wasm-opt.

No tool downloads anything: wasm-bindgen-cli is installed by `make setup` at the same
version as the crate's wasm-bindgen, wasm-opt comes from Debian's binaryen.
Prints the .wasm size (raw and gzip) at the end.
"""
import gzip
import os
import pathlib
import shutil
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def run(cmd, env=None):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, env=env)


def main():
    cfg = tomllib.loads((ROOT / "wasm-pack.toml").read_text())
    b, bg, opt = cfg["build"], cfg["bindgen"], cfg["wasm-opt"]
    env = dict(os.environ)
    env["RUSTFLAGS"] = " ".join(b.get("rustflags", []))
    cmd = ["cargo", "build", "--lib", "--target", b["target"], "--profile", b["profile"]]
    if b.get("no-default-features"):
        cmd.append("--no-default-features")
    if b.get("features"):
        cmd += ["--features", ",".join(b["features"])]
    # A separate target dir: different RUSTFLAGS would otherwise rebuild the native crates.
    cmd += ["--target-dir", str(ROOT / "target/wasm")]
    run(cmd, env)
    profile_dir = "release" if b["profile"] == "release" else b["profile"]
    wasm = ROOT / "target/wasm" / b["target"] / profile_dir / "hearth.wasm"
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
    final = out / f"{bg['out-name']}_bg.wasm"
    raw = final.stat().st_size
    gz = len(gzip.compress(final.read_bytes(), 9))
    print(f"{final.relative_to(ROOT)}: {raw / 1e6:.2f} MB raw, {gz / 1e6:.2f} MB gzip")


if __name__ == "__main__":
    main()
