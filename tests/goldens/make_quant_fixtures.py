#!/usr/bin/env python3
"""Writes the dequantization goldens under tests/goldens/quant/ (committed; not run in CI).

For every block type Hearth dequantizes, builds a few blocks of random bytes (scale fields
overwritten with small finite f16 values; float types from random finite values), dequantizes
them with the `gguf` package (`gguf.quants.dequantize`; fixtures made with gguf 0.19.0), and writes
  <TYPE>.bin  the raw blocks (ggml layout)
  <TYPE>.f32  the expected values, little-endian f32
Usage: python3 tests/goldens/make_quant_fixtures.py
"""
import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quant")

# Byte offsets of the f16 scale fields in each block (ggml-common.h).
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
BLOCKS = 8  # per quantized type; float types get 256 elements


def blocks_for(rng, qtype):
    if qtype == T.F32:
        return rng.uniform(-4, 4, 256).astype("<f4").tobytes()
    if qtype == T.F16:
        vals = rng.uniform(-4, 4, 256).astype("<f2")
        vals[:4] = [0.0, -0.0, 6.1e-5, 65504.0]  # zero, negative zero, subnormal-ish, max
        return vals.tobytes()
    if qtype == T.BF16:
        bits = (rng.uniform(-4, 4, 256).astype("<f4").view("<u4") >> 16).astype("<u2")
        return bits.tobytes()
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    raw = bytearray(rng.integers(0, 256, BLOCKS * type_size, dtype=np.uint8).tobytes())
    for b in range(BLOCKS):
        for off in F16_FIELDS[qtype]:
            v = np.array([rng.uniform(-0.1, 0.1)], dtype="<f2").tobytes()
            raw[b * type_size + off: b * type_size + off + 2] = v
    return bytes(raw)


def main():
    rng = np.random.default_rng(20240601)
    os.makedirs(OUT, exist_ok=True)
    for qtype in [T.F32, T.F16, T.BF16, *F16_FIELDS]:
        raw = blocks_for(rng, qtype)
        data = np.frombuffer(raw, dtype=np.uint8)
        expected = gguf.quants.dequantize(data, qtype)
        expected = np.asarray(expected, dtype="<f4").reshape(-1)
        with open(os.path.join(OUT, f"{qtype.name}.bin"), "wb") as f:
            f.write(raw)
        with open(os.path.join(OUT, f"{qtype.name}.f32"), "wb") as f:
            f.write(expected.tobytes())
        print(f"{qtype.name:5} {len(raw):6} bytes -> {expected.size} floats")


if __name__ == "__main__":
    main()
