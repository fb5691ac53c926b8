#!/usr/bin/env python3
"""Dump the tensor directory of a GGUF file as JSON, using the reference `gguf` package.

Golden for tests/gguf_real.rs (Hearth's reader must agree with gguf-py, v0.19.0).

    python3 tests/goldens/dump_gguf_directory.py \
        models/cache/SmolLM2-135M-Instruct.Q4_1.gguf > tests/goldens/smollm2_tensors.json
"""
import importlib.metadata
import json
import sys

import gguf


def main(path: str) -> None:
    reader = gguf.GGUFReader(path)
    version = int(reader.fields["GGUF.version"].parts[-1][0])
    arch = reader.fields["general.architecture"]
    tokens = reader.fields["tokenizer.ggml.tokens"]
    tensors = []
    for t in reader.tensors:
        tensors.append({
            "name": t.name,
            "type": t.tensor_type.name,
            "type_id": int(t.tensor_type.value),
            "dims": [int(d) for d in t.shape],  # innermost first, as stored
            "offset": int(t.data_offset - reader.data_offset),  # relative to the data section
            "n_bytes": int(t.n_bytes),
        })
    out = {
        "gguf_py_version": importlib.metadata.version("gguf"),
        "version": version,
        # reader.fields also holds the GGUF.* pseudo-fields of the preamble.
        "n_kv": sum(1 for k in reader.fields if not k.startswith("GGUF.")),
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "architecture": str(bytes(arch.parts[arch.data[0]]), encoding="utf-8"),
        "n_tokens": len(tokens.data),
        "tensors": tensors,
    }
    # One tensor per line: small diffs, easy to read.
    head = json.dumps({k: v for k, v in out.items() if k != "tensors"}, indent=1)
    rows = ",\n".join("  " + json.dumps(t) for t in tensors)
    sys.stdout.write(head[:-2] + ',\n "tensors": [\n' + rows + "\n ]\n}\n")


if __name__ == "__main__":
    main(sys.argv[1])
