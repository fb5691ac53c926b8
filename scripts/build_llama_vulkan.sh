#!/usr/bin/env bash
# Builds llama.cpp's llama-bench with the Vulkan backend (-DGGML_VULKAN=ON) from the llama.cpp
# sources vendored by the pinned llama-cpp-python sdist, into a directory outside the repo.
# Needs the Debian packages glslc, libvulkan-dev and spirv-headers (and cmake, a C++ compiler).
# Usage: scripts/build_llama_vulkan.sh [BUILD_ROOT]   (default /work/vkbuild, or $HEARTH_VKBUILD)
# Prints the path of llama-bench on its last line.
set -euo pipefail
VERSION=0.3.36
ROOT="${1:-${HEARTH_VKBUILD:-/work/vkbuild}}"
JOBS="${HEARTH_VKBUILD_JOBS:-2}"
BIN="$ROOT/build/bin/llama-bench"
if [ -x "$BIN" ]; then echo "$BIN"; exit 0; fi
for tool in glslc cmake c++; do
  command -v "$tool" >/dev/null || { echo "build_llama_vulkan: $tool missing (apt-get install glslc libvulkan-dev spirv-headers cmake g++)" >&2; exit 1; }
done
[ -f /usr/include/vulkan/vulkan.h ] || { echo "build_llama_vulkan: libvulkan-dev missing" >&2; exit 1; }
mkdir -p "$ROOT"
SDIST="$ROOT/llama_cpp_python-$VERSION.tar.gz"
CACHED="$(cd "$(dirname "$0")/.." && pwd)/.cache/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$SDIST" ] && [ -f "$CACHED" ]; then cp "$CACHED" "$SDIST"; fi
if [ ! -f "$SDIST" ]; then
  # The sdist only (no wheel of llama-cpp-python, no dependencies): the same sources the CPU
  # peer is built from. Its build tools may come as wheels (only metadata is prepared).
  pip download --no-binary llama-cpp-python --no-deps -d "$ROOT" "llama-cpp-python==$VERSION" >&2
fi
SRC="$ROOT/llama_cpp_python-$VERSION/vendor/llama.cpp"
[ -d "$SRC" ] || tar -xzf "$SDIST" -C "$ROOT"
# Debian 12's Vulkan headers (1.3.239) predate VK_EXT_layer_settings, which llama.cpp uses
# only to configure the validation layer: without the extension's header, create the
# instance without those settings (a no-op unless GGML_VULKAN_VALIDATE is built in).
VKCPP="$SRC/ggml/src/ggml-vulkan/ggml-vulkan.cpp"
if ! grep -q "VK_EXT_layer_settings" /usr/include/vulkan/vulkan_core.h && ! grep -q "HEARTH_PATCH" "$VKCPP"; then
  python3 - "$VKCPP" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
a = s.index("    VkBool32 enable_best_practice = layer_settings;")
b = s.index("    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions, &layer_setting_info);")
end = b + len("    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions, &layer_setting_info);")
s = s[:a] + "    // HEARTH_PATCH: headers without VK_EXT_layer_settings\n    vk::InstanceCreateInfo instance_create_info(vk::InstanceCreateFlags{}, &app_info, layers, extensions);" + s[end:]
open(p, "w").write(s)
PY
fi
start=$(date +%s)
cmake -S "$SRC" -B "$ROOT/build" -DCMAKE_BUILD_TYPE=Release -DGGML_VULKAN=ON -DGGML_NATIVE=ON \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
nice -n 10 cmake --build "$ROOT/build" --target llama-bench -j "$JOBS" >&2
echo "build_llama_vulkan: built in $(( $(date +%s) - start )) s" >&2
echo "$BIN"
