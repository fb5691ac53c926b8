#!/usr/bin/env bash
# Installs everything Hearth's build and tests need on a fresh Debian machine (as root).
# Idempotent: each step checks first and does nothing when already satisfied.
set -euo pipefail
WASM_BINDGEN_VERSION="${1:?usage: setup.sh WASM_BINDGEN_VERSION}"
cd "$(dirname "$0")/.."

APT_PKGS=(mesa-vulkan-drivers libvulkan1 binaryen chromium curl ca-certificates python3)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: Rust is missing; install it with rustup (https://rustup.rs)" >&2
  exit 1
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "setup: rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# The threaded wasm build's pinned nightly (wasm-pack.toml [build.threads] toolchain), with
# rust-src for -Zbuild-std and the wasm32 target.
NIGHTLY="$(python3 -c 'import tomllib; print(tomllib.load(open("wasm-pack.toml", "rb"))["build"]["threads"]["toolchain"])')"
if ! rustup run "$NIGHTLY" rustc --version >/dev/null 2>&1 \
  || ! rustup component list --toolchain "$NIGHTLY" --installed | grep -q '^rust-src' \
  || ! rustup target list --toolchain "$NIGHTLY" --installed | grep -qx wasm32-unknown-unknown; then
  echo "setup: rustup toolchain install $NIGHTLY (rust-src, wasm32-unknown-unknown)"
  rustup toolchain install "$NIGHTLY" --profile minimal -c rust-src --target wasm32-unknown-unknown
fi

if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]]; then
  echo "setup: cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  cargo install --quiet wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if [[ -f www/package.json ]] && [[ ! -d www/node_modules ]]; then
  echo "setup: npm ci (www/)"
  (cd www && npm ci --no-audit --no-fund)
fi
echo "setup: ok"
