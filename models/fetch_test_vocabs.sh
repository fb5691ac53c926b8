#!/bin/sh
# Makes llama.cpp's tokenizer test vocabularies available in .cache/llama-vocab/:
# models/ggml-vocab-*.gguf with their .gguf.inp/.gguf.out test vectors, taken from the
# llama-cpp-python 0.3.36 source distribution (which vendors llama.cpp). Used by
# tests/tokenizer_parity.rs. Idempotent: does nothing when the files are already there.
#
# `pip download` cannot fetch this sdist without a C++ toolchain (it builds metadata), so the
# archive is fetched from pip's own configured package index (simple API) and its sha256
# checked against the value below.
set -eu
cd "$(dirname "$0")/.."

VERSION=0.3.36
ARCHIVE=llama_cpp_python-$VERSION.tar.gz
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
DEST=.cache/llama-vocab
STAMP=$DEST/.complete-$VERSION

if [ -f "$STAMP" ]; then
    exit 0
fi
mkdir -p .cache

sha_ok() {
    [ -f "$1" ] && echo "$SHA256  $1" | sha256sum -c --status -
}

if ! sha_ok ".cache/$ARCHIVE"; then
    index=${PIP_INDEX_URL:-$(python3 -m pip config get global.index-url 2>/dev/null || true)}
    if [ -z "$index" ]; then
        index=$(python3 -c 'from pip._internal.models.index import PyPI; print(PyPI.simple_url)')
    fi
    page=$(curl -fsSL "${index%/}/llama-cpp-python/")
    url=$(printf '%s\n' "$page" | grep -o "href=\"[^\"]*/$ARCHIVE[^\"]*\"" | head -n 1 | sed -e 's/^href="//' -e 's/"$//' -e 's/#.*//')
    if [ -z "$url" ]; then
        echo "fetch_test_vocabs: $ARCHIVE not listed by the package index $index" >&2
        exit 1
    fi
    case "$url" in
        http*) ;;
        *) url="${index%/}/llama-cpp-python/$url" ;;
    esac
    echo "fetch_test_vocabs: downloading $ARCHIVE" >&2
    curl -fsSL -o ".cache/$ARCHIVE.part" "$url"
    if ! sha_ok ".cache/$ARCHIVE.part"; then
        echo "fetch_test_vocabs: sha256 mismatch for $ARCHIVE" >&2
        rm -f ".cache/$ARCHIVE.part"
        exit 1
    fi
    mv ".cache/$ARCHIVE.part" ".cache/$ARCHIVE"
fi

tmp=$(mktemp -d .cache/llama-vocab.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
tar -xzf ".cache/$ARCHIVE" -C "$tmp" --wildcards "llama_cpp_python-$VERSION/vendor/llama.cpp/models/ggml-vocab-*"
mkdir -p "$DEST"
mv "$tmp/llama_cpp_python-$VERSION/vendor/llama.cpp/models/"ggml-vocab-* "$DEST/"
touch "$STAMP"
echo "fetch_test_vocabs: $(ls "$DEST" | wc -l) files in $DEST" >&2
