"""Split-GGUF goldens: one synthetic model split by llama.cpp's own `gguf-split`, run by llama.cpp.

Not run in CI. Needs what make_synthetic.py needs, plus llama.cpp's `gguf-split` tool, built in
seconds against the installed llama-cpp-python's libraries (no llama.cpp build):

    L=<llama-cpp-python sdist>/vendor/llama.cpp   # e.g. pip download --no-binary :all: llama-cpp-python
    LIB=$(python3 -c "import llama_cpp,os;print(os.path.dirname(llama_cpp.__file__))")/lib
    printf 'int llama_build_number(void){return 0;}\\nconst char*llama_commit(void){return "";}\\n\\
    const char*llama_compiler(void){return "";}\\nconst char*llama_build_target(void){return "";}\\n' > bi.cpp
    g++ -O1 -std=c++17 -I$L/include -I$L/ggml/include -I$L/common $L/tools/gguf-split/gguf-split.cpp bi.cpp \\
        -L$LIB -lllama -lggml -lggml-base -Wl,-rpath,$LIB -o gguf-split

Writes tests/goldens/synthetic/split.json: the model (a recipe of recipes.json), the
`--split-max-tensors` used, each part's name, size and SHA-256 (tests/synthetic.rs splits the
rebuilt model the same way and must produce these very bytes), and llama.cpp's greedy tokens
and logits on the split model, checked here to equal its outputs on the unsplit file.

With `--real`: splits the default registry model (SmolLM2, models/cache/) with gguf-split and
writes tests/goldens/split_smollm2.json (each part's name, size and SHA-256): tests/split_real.rs
splits the same file with Hearth's splitter and must produce these very bytes.

Usage: GGUF_SPLIT=/path/to/gguf-split python3 tests/goldens/make_split.py [--real]
"""
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_synthetic as ms  # noqa: E402

MODEL = "qwen3_q8_0"
MAX_TENSORS = 10


REAL = "SmolLM2-135M-Instruct.Q4_1.gguf"
REAL_MAX_TENSORS = 100


def real(tool):
    src = ms.HERE.parent.parent / "models/cache" / REAL
    with tempfile.TemporaryDirectory() as tmp:
        prefix = pathlib.Path(tmp) / "smollm2"
        subprocess.run([tool, "--split", "--split-max-tensors", str(REAL_MAX_TENSORS), str(src), str(prefix)],
                       check=True, stdout=subprocess.DEVNULL)
        parts = sorted(pathlib.Path(tmp).glob("smollm2-*-of-*.gguf"))
        assert len(parts) > 1, parts
        out = {
            "about": "tests/goldens/make_split.py --real", "model": REAL, "max_tensors": REAL_MAX_TENSORS,
            "source_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
            "parts": [{"name": p.name, "bytes": p.stat().st_size,
                       "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in parts],
        }
    (ms.HERE / "split_smollm2.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


def main():
    tool = os.environ.get("GGUF_SPLIT", "gguf-split")
    if sys.argv[1:] == ["--real"]:
        return real(tool)
    doc = json.loads((ms.OUT / "recipes.json").read_text())
    rec = next(m for m in doc["models"] if m["name"] == MODEL)
    with tempfile.TemporaryDirectory() as tmp:
        whole = pathlib.Path(tmp) / f"{MODEL}.gguf"
        ms.write_gguf(rec, whole)
        prefix = pathlib.Path(tmp) / MODEL
        subprocess.run([tool, "--split", "--split-max-tensors", str(MAX_TENSORS), str(whole), str(prefix)],
                       check=True, stdout=subprocess.DEVNULL)
        parts = sorted(pathlib.Path(tmp).glob(f"{MODEL}-*-of-*.gguf"))
        assert len(parts) > 1, parts
        n_vocab, prompts, logits = ms.run_llama(parts[0], rec)
        golden = np.fromfile(ms.OUT / f"{MODEL}.f16", dtype=np.float16)
        assert np.array_equal(logits, golden), "llama.cpp's logits on the split model differ from the unsplit file's"
        assert [p["greedy"] for p in prompts] == [p["greedy"] for p in rec["prompts"]]
        out = {
            "about": "tests/goldens/make_split.py", "model": MODEL, "max_tensors": MAX_TENSORS,
            "parts": [{"name": p.name, "bytes": p.stat().st_size,
                       "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in parts],
            "llama_cpp_split_equals_unsplit": True,
        }
    (ms.OUT / "split.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
