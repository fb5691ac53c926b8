"""Synthetic-model conformance goldens: small random-weight GGUFs with each family's real
metadata layout, tensor names and shapes, run by llama.cpp.

Not run in CI: it needs `llama-cpp-python` (`make bench-deps` builds it) and the `gguf` package
(`pip install gguf`), plus llama.cpp's test vocabularies in .cache/llama-vocab/ (`make test-data`).

Every model is described by a *recipe* (metadata key/values, and per tensor: name, GGUF dims,
block type and how its bytes are drawn from a seed). The recipes go into
tests/goldens/synthetic/recipes.json with llama.cpp's outputs; tests/synthetic.rs rebuilds the
very same GGUF bytes from each recipe (tests/common/synthetic.rs: the same counter-based
generator, no floating point in it) so no model file is committed.

Tensor bytes (`stream(seed)`: splitmix64 of seed + (j+1)·0x9E3779B97F4A7C15, j = 0, 1, ...,
each 64-bit output as 8 little-endian bytes):
  norm    F32: 1 + (b - 128) / 1024 for byte b (exactly representable)
  bias    F32: (b - 128) / 256
  values  F32: the literal list in the recipe (RoPE frequency factors)
  F16     each element's u16 u: (u & 0x83FF) | ((e + ((u >> 10) & 1)) << 10)
  Q8_0 / Q4_K / Q6_K: random block bytes with the block's f16 scale fields (d, dmin) set to the
          recipe's values, so every block decodes to finite weights of the wanted magnitude.

For each model: two raw prompts, llama.cpp's prompt ids, 32 greedy tokens (continuing past an
end-of-generation token), the top-1/top-2 gap at each step, and the full logits of the first
prompt's last position (float16, synthetic/<model>.f16).

Usage: python3 tests/goldens/make_synthetic.py [family ...]
       python3 tests/goldens/make_synthetic.py --write RECIPE OUT.gguf
The second form only writes one model's GGUF (streamed: memory one tensor), no llama.cpp run and
no goldens: for FULL_DEPTH, the ~4 GB Mistral-7B-shaped model (`make test-7b-full`,
tests/browser/big_model.mjs). Write it outside the repository and delete it when done.
"""
import functools
import json
import math
import pathlib
import sys
import tempfile

import numpy as np
import gguf

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "synthetic"
VOCAB = HERE.parent.parent / ".cache/llama-vocab"
GOLD = np.uint64(0x9E3779B97F4A7C15)
N_GREEDY = 32
N_CTX = 256
PROMPTS = ["The quick brown fox jumps over the lazy dog.", "def main():\n    print(\"hello\")"]
FORMATS = ["F16", "Q8_0", "Q4_K", "Q6_K"]
BLOCK = {"Q8_0": (32, 34), "Q4_K": (256, 144), "Q6_K": (256, 210)}


def stream(seed, nbytes):
    n = (nbytes + 7) // 8
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * GOLD
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z.astype("<u8").view(np.uint8)[:nbytes]


def f16_bits(x):
    return int(np.array([x], dtype=np.float16).view(np.uint16)[0])


def tensor_bytes(t):
    """The tensor's bytes from its recipe entry (mirrored by tests/common/synthetic.rs)."""
    n = int(np.prod(t["dims"]))
    kind, ty = t["kind"], t["type"]
    if kind == "values":
        return np.array(t["values"], dtype="<f4").view(np.uint8)
    if kind == "norm":
        return (1.0 + (stream(t["seed"], n).astype(np.float32) - 128) / 1024).astype("<f4").view(np.uint8)
    if kind == "bias":
        return ((stream(t["seed"], n).astype(np.float32) - 128) / 256).astype("<f4").view(np.uint8)
    if ty == "F16":
        u = stream(t["seed"], 2 * n).view("<u2").astype(np.uint32)
        bits = (u & 0x83FF) | ((t["e"] + ((u >> 10) & 1)) << 10)
        return bits.astype("<u2").view(np.uint8)
    qk, size = BLOCK[ty]
    assert n % qk == 0, (t["name"], n, qk)
    b = stream(t["seed"], n // qk * size).reshape(-1, size).copy()
    d = np.array([t["d"]], dtype="<u2").view(np.uint8)
    if ty in ("Q8_0", "Q4_K"):
        b[:, 0:2] = d
    if ty == "Q4_K":
        b[:, 2:4] = np.array([t["dmin"]], dtype="<u2").view(np.uint8)
    if ty == "Q6_K":
        b[:, 208:210] = d
    return b.reshape(-1)


def matrix(name, cols, rows, ty, seed, gain=1.0):
    """A weight matrix whose elements have about gain/sqrt(cols) spread."""
    sigma = gain / math.sqrt(cols)
    t = {"name": name, "dims": [cols, rows], "type": ty, "kind": "matrix", "seed": seed}
    if ty == "F16":
        t["e"] = int(round(math.log2(sigma / 2.0))) + 15
    elif ty == "Q8_0":
        t["d"] = f16_bits(sigma / 74.0)
    elif ty == "Q4_K":
        t["d"] = f16_bits(sigma / 250.0)
        t["dmin"] = f16_bits(7.5 * sigma / 250.0)
    elif ty == "Q6_K":
        t["d"] = f16_bits(sigma / 1369.0)
    return t


def vector(name, n, kind, seed):
    return {"name": name, "dims": [n], "type": "F32", "kind": kind, "seed": seed}


def llama3_factors(n_rot, base, factor, low, high, old_ctx):
    """convert_hf_to_gguf's rope_freqs for rope_type llama3 (conversion/llama.py)."""
    out = []
    for i in range(0, n_rot, 2):
        freq = 1.0 / (base ** (i / n_rot))
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return [float(np.float32(x)) for x in out]


# Each family: architecture, metadata, shapes and features of the real models, narrowed.
FAMILIES = {
    # Llama 3.2 1B: GQA 4:1 head 64, tied output, Llama 3 RoPE scaling (rope_freqs), theta 5e5.
    "llama3": dict(arch="llama", vocab="llama-bpe", n_embd=256, n_layer=2, n_ff=512, n_head=4, n_head_kv=1,
                   head_dim=64, theta=500000.0, tied=True, eps=1e-5,
                   rope_freqs=dict(factor=32.0, low=1.0, high=4.0, old_ctx=64)),
    # Qwen3 0.6B: head 128 (q width ≠ n_embd), GQA 2:1, QK-norm, no biases, NeoX, tied.
    "qwen3": dict(arch="qwen3", vocab="qwen2", n_embd=256, n_layer=2, n_ff=512, n_head=4, n_head_kv=2,
                  head_dim=128, theta=1000000.0, tied=True, eps=1e-6, qk_norm=True),
    # Mistral 7B v0.1 as llama.cpp converts it (arch llama): GQA 4:1, untied, a sliding window
    # longer than the test sequence (llama.cpp's llama graph has no window).
    "mistral": dict(arch="llama", vocab="llama-spm", n_embd=256, n_layer=2, n_ff=768, n_head=8, n_head_kv=2,
                    head_dim=32, theta=10000.0, tied=False, eps=1e-5, sliding_window=4096),
    # SmolLM3 3B: every fourth layer without RoPE, GQA 4:1... narrowed to 2:1, tied.
    "smollm3": dict(arch="smollm3", vocab="llama-bpe", n_embd=256, n_layer=4, n_ff=512, n_head=4, n_head_kv=2,
                    head_dim=64, theta=5000000.0, tied=True, eps=1e-6),
    # Gemma 3 1B: head 256 with 4 query heads over 1 kv head (q width ≠ n_embd), QK-norm,
    # post-norms, sliding window on 5 of 6 layers (window 8 here so it is exercised), theta 1e6
    # global / 1e4 local, tied.
    "gemma3": dict(arch="gemma3", vocab="llama-spm", n_embd=256, n_layer=6, n_ff=512, n_head=4, n_head_kv=1,
                   head_dim=256, theta=1000000.0, tied=True, eps=1e-6, sliding_window=8, qk_norm=True),
    # Gemma 3 4B: 8 query heads over 4 kv heads of 256, linear RoPE scaling ×8 on global layers.
    "gemma3_4b": dict(arch="gemma3", vocab="llama-spm", n_embd=256, n_layer=6, n_ff=512, n_head=8, n_head_kv=4,
                      head_dim=256, theta=1000000.0, tied=True, eps=1e-6, sliding_window=8, qk_norm=True,
                      linear_scale=8.0),
    # Phi-4-mini: fused QKV and gate/up, GQA 2:1, partial rotary (96 of 128), LongRoPE factors
    # (short ones: the context is below the original 4096) with their attention factor, tied.
    "phi3": dict(arch="phi3", vocab="phi-3", n_embd=256, n_layer=2, n_ff=512, n_head=2, n_head_kv=1,
                 head_dim=128, n_rot=96, theta=10000.0, tied=True, eps=1e-5, longrope=True),
    # (Last, so the other families keep their seeds.) Gemma 2 2B/9B: no QK-norm, post-norms, windowed and global layers alternating (window 8
    # here so it is exercised), attention scores and final logits soft-capped (caps lowered from
    # 50/30 so random weights reach them), q width ≠ n_embd as in 9B (16 × 256 over 3584), tied.
    "gemma2": dict(arch="gemma2", vocab="llama-spm", n_embd=256, n_layer=4, n_ff=512, n_head=4, n_head_kv=2,
                   head_dim=128, theta=10000.0, tied=True, eps=1e-6, sliding_window=8,
                   attn_softcap=4.0, final_softcap=8.0),
}

# 7B-shaped models (`make test-7b`, not in `make test`): the real widths, heads and vocabulary of
# Llama 2 7B / Mistral 7B and Qwen2.5 7B with two layers, Q4_K only: every matrix has the full
# size of the real model's (the embedding and output of Qwen2.5 are 3584 x 151 936).
BIG = {
    "llama7b": dict(arch="llama", vocab="llama-spm", n_embd=4096, n_layer=2, n_ff=11008, n_head=32, n_head_kv=8,
                    head_dim=128, theta=10000.0, tied=False, eps=1e-5),
    "qwen7b": dict(arch="qwen2", vocab="qwen2", n_embd=3584, n_layer=2, n_ff=18944, n_head=28, n_head_kv=4,
                   head_dim=128, theta=1000000.0, tied=False, eps=1e-6, qkv_bias=True),
}
FAMILIES.update(BIG)

# Full depth, no goldens (`--write` only): Mistral 7B v0.1 exactly as llama.cpp converts it:
# 32 layers, 4096 wide, FFN 14336, 32 query heads over 8 KV heads of 128, 32000-token SentencePiece
# vocabulary, untied output; every matrix Q4_K: 7.24 B weights, 4.07 GB.
FULL_DEPTH = {
    "mistral7b_full": dict(arch="llama", vocab="llama-spm", n_embd=4096, n_layer=32, n_ff=14336, n_head=32, n_head_kv=8,
                           head_dim=128, theta=10000.0, tied=False, eps=1e-5, sliding_window=4096),
}
FAMILIES.update(FULL_DEPTH)


def recipe(family, ty):
    f = FAMILIES[family]
    arch = f["arch"]
    d, hd, nh, nkv, ff = f["n_embd"], f["head_dim"], f["n_head"], f["n_head_kv"], f["n_ff"]
    n_rot = f.get("n_rot", hd)
    md = [
        ("general.architecture", "str", arch),
        ("general.name", "str", f"synthetic {family} {ty}"),
        (f"{arch}.context_length", "u32", 131072 if arch in ("llama", "phi3") else 32768),
        (f"{arch}.embedding_length", "u32", d),
        (f"{arch}.block_count", "u32", f["n_layer"]),
        (f"{arch}.feed_forward_length", "u32", ff),
        (f"{arch}.attention.head_count", "u32", nh),
        (f"{arch}.attention.head_count_kv", "u32", nkv),
        (f"{arch}.rope.freq_base", "f32", f["theta"]),
        (f"{arch}.attention.layer_norm_rms_epsilon", "f32", f["eps"]),
        (f"{arch}.rope.dimension_count", "u32", n_rot),
    ]
    if hd * nh != d or arch in ("qwen3", "gemma2", "gemma3"):
        md += [(f"{arch}.attention.key_length", "u32", hd), (f"{arch}.attention.value_length", "u32", hd)]
    if "sliding_window" in f:
        md.append((f"{arch}.attention.sliding_window", "u32", f["sliding_window"]))
    if arch == "phi3":
        md += [(f"{arch}.attention.sliding_window", "u32", 0),
               (f"{arch}.rope.scaling.original_context_length", "u32", 4096),
               (f"{arch}.rope.scaling.attn_factor", "f32", math.sqrt(1 + math.log(32) / math.log(4096)))]
    if "attn_softcap" in f:
        md += [(f"{arch}.attn_logit_softcapping", "f32", f["attn_softcap"]),
               (f"{arch}.final_logit_softcapping", "f32", f["final_softcap"])]
    if "linear_scale" in f:
        md += [(f"{arch}.rope.scaling.type", "str", "linear"), (f"{arch}.rope.scaling.factor", "f32", f["linear_scale"])]
    seed = [list(FAMILIES).index(family) * 1000003 + FORMATS.index(ty) * 100000007]

    def next_seed():
        seed[0] += 7919
        return seed[0] & 0xFFFFFFFF

    ts = []
    qd, kvd = nh * hd, nkv * hd
    vocab_rows = "@n_vocab"
    ts.append(matrix("token_embd.weight", d, vocab_rows, ty, next_seed(), gain=4.0 if f["tied"] else 1.0))
    ts.append(vector("output_norm.weight", d, "norm", next_seed()))
    if not f["tied"]:
        ts.append(matrix("output.weight", d, vocab_rows, ty, next_seed(), gain=4.0))
    if "rope_freqs" in f:
        r = f["rope_freqs"]
        vals = llama3_factors(n_rot, f["theta"], r["factor"], r["low"], r["high"], r["old_ctx"])
        ts.append({"name": "rope_freqs.weight", "dims": [n_rot // 2], "type": "F32", "kind": "values", "values": vals})
    if f.get("longrope"):
        rng = np.random.default_rng(7)
        for which, lo, hi in (("long", 1.0, 30.0), ("short", 0.9, 2.5)):
            vals = [float(np.float32(x)) for x in np.sort(rng.uniform(lo, hi, n_rot // 2))]
            ts.append({"name": f"rope_factors_{which}.weight", "dims": [n_rot // 2], "type": "F32", "kind": "values", "values": vals})
    for il in range(f["n_layer"]):
        b = f"blk.{il}."
        ts.append(vector(b + "attn_norm.weight", d, "norm", next_seed()))
        if arch == "phi3":
            ts.append(matrix(b + "attn_qkv.weight", d, qd + 2 * kvd, ty, next_seed()))
        else:
            ts.append(matrix(b + "attn_q.weight", d, qd, ty, next_seed()))
            ts.append(matrix(b + "attn_k.weight", d, kvd, ty, next_seed()))
            ts.append(matrix(b + "attn_v.weight", d, kvd, ty, next_seed()))
            if f.get("qkv_bias"):
                for w, n in (("q", qd), ("k", kvd), ("v", kvd)):
                    ts.append(vector(b + f"attn_{w}.bias", n, "bias", next_seed()))
        if f.get("qk_norm"):
            ts.append(vector(b + "attn_q_norm.weight", hd, "norm", next_seed()))
            ts.append(vector(b + "attn_k_norm.weight", hd, "norm", next_seed()))
        ts.append(matrix(b + "attn_output.weight", qd, d, ty, next_seed()))
        if arch in ("gemma2", "gemma3"):
            ts.append(vector(b + "post_attention_norm.weight", d, "norm", next_seed()))
        ts.append(vector(b + "ffn_norm.weight", d, "norm", next_seed()))
        if arch == "phi3":
            ts.append(matrix(b + "ffn_up.weight", d, 2 * ff, ty, next_seed()))
        else:
            ts.append(matrix(b + "ffn_gate.weight", d, ff, ty, next_seed()))
            ts.append(matrix(b + "ffn_up.weight", d, ff, ty, next_seed()))
        ts.append(matrix(b + "ffn_down.weight", ff, d, ty, next_seed()))
        if arch in ("gemma2", "gemma3"):
            ts.append(vector(b + "post_ffw_norm.weight", d, "norm", next_seed()))
    return {"name": f"{family}_{ty.lower()}", "family": family, "format": ty, "big": family in BIG,
            "vocab": f"ggml-vocab-{f['vocab']}.gguf",
            "metadata": [list(m) for m in md], "tensors": ts}


VT = {"u32": gguf.GGUFValueType.UINT32, "f32": gguf.GGUFValueType.FLOAT32,
      "str": gguf.GGUFValueType.STRING, "bool": gguf.GGUFValueType.BOOL}


@functools.lru_cache(maxsize=None)
def vocab_fields(name):
    """The `tokenizer.*` keys of a vocabulary file, as (key, value, type, sub type)."""
    vocab = gguf.GGUFReader(str(VOCAB / name))
    out = []
    for key, field in vocab.fields.items():
        if key.startswith("tokenizer."):
            sub = field.types[-1] if field.types[0] == gguf.GGUFValueType.ARRAY else None
            out.append((key, field.contents(), field.types[0], sub))
    return out


def write_gguf(rec, path):
    fields = vocab_fields(rec["vocab"])
    n_vocab = len(next(v for k, v, _, _ in fields if k == "tokenizer.ggml.tokens"))
    arch = rec["metadata"][0][2]
    w = gguf.GGUFWriter(str(path), arch)
    for key, ty, val in rec["metadata"][1:]:
        w.add_key_value(key, val, VT[ty])
    for key, val, ty, sub in fields:
        w.add_key_value(key, val, ty, sub_type=sub)
    for t in rec["tensors"]:
        dims = [n_vocab if x == "@n_vocab" else x for x in t["dims"]]
        t = dict(t, dims=dims)
        data = tensor_bytes(t)
        qt = gguf.GGMLQuantizationType[t["type"]]
        if t["type"] == "F32":
            w.add_tensor(t["name"], data.view("<f4").reshape(dims[::-1]))
        elif t["type"] == "F16":
            w.add_tensor(t["name"], data.view("<f2").reshape(dims[::-1]))
        else:
            qk, size = BLOCK[t["type"]]
            w.add_tensor(t["name"], data, raw_shape=[dims[1], dims[0] // qk * size], raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return n_vocab


def write_gguf_streamed(rec, path):
    """write_gguf, one tensor in memory at a time (for the multi-GB FULL_DEPTH models)."""
    fields = vocab_fields(rec["vocab"])
    n_vocab = len(next(v for k, v, _, _ in fields if k == "tokenizer.ggml.tokens"))
    w = gguf.GGUFWriter(str(path), rec["metadata"][0][2])
    for key, ty, val in rec["metadata"][1:]:
        w.add_key_value(key, val, VT[ty])
    for key, val, ty, sub in fields:
        w.add_key_value(key, val, ty, sub_type=sub)
    tensors = [dict(t, dims=[n_vocab if x == "@n_vocab" else x for x in t["dims"]]) for t in rec["tensors"]]
    for t in tensors:
        n = int(np.prod(t["dims"]))
        if t["type"] == "F32":
            w.add_tensor_info(t["name"], t["dims"][::-1], np.dtype(np.float32), 4 * n)
        else:
            qk, size = BLOCK[t["type"]]
            w.add_tensor_info(t["name"], [t["dims"][1], t["dims"][0] // qk * size], np.dtype(np.uint8), n // qk * size,
                              raw_dtype=gguf.GGMLQuantizationType[t["type"]])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for t in tensors:
        w.write_tensor_data(tensor_bytes(t))
    w.close()
    return n_vocab


def run_llama(path, rec):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=N_CTX, n_batch=64, logits_all=True,
                          n_threads=2, seed=0, verbose=False)
    n_vocab = llm.n_vocab()
    prompts, logits = [], None
    for i, text in enumerate(PROMPTS):
        ids = llm.tokenize(text.encode(), add_bos=True, special=False)
        llm.reset()
        llm.eval(ids)
        greedy, gaps = [], []
        for step in range(N_GREEDY):
            row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            assert np.isfinite(row).all(), (rec["name"], step)
            if i == 0 and step == 0:
                logits = row.astype(np.float16)
            top2 = np.argsort(row)[-2:]
            greedy.append(int(top2[1]))
            gaps.append(float(row[top2[1]] - row[top2[0]]))
            if step + 1 < N_GREEDY:
                llm.eval([int(top2[1])])
        prompts.append({"text": text, "ids": ids, "greedy": greedy, "gaps": gaps})
        print(f"  {rec['name']:18} prompt {i}: {len(ids)} ids, min gap {min(gaps):.3f}, "
              f"logit std {float(np.std(row)):.2f}", flush=True)
    del llm
    return n_vocab, prompts, logits


def main():
    import os
    if sys.argv[1:2] == ["--write"]:
        name, out = sys.argv[2:4]
        n_vocab = write_gguf_streamed(recipe(name, "Q4_K"), pathlib.Path(out))
        print(f"wrote {out}: {pathlib.Path(out).stat().st_size} bytes, vocabulary {n_vocab}", flush=True)
        return
    families = sys.argv[1:] or [f for f in FAMILIES if f not in BIG and f not in FULL_DEPTH]
    formats = os.environ.get("SYNTHETIC_FORMATS", ",".join(FORMATS)).split(",")
    if any(f in BIG for f in families):
        formats = ["Q4_K"]
    OUT.mkdir(exist_ok=True)
    path = OUT / "recipes.json"
    doc = json.loads(path.read_text()) if path.exists() else {"models": []}
    keep = [m for m in doc["models"] if m["family"] not in families]
    if os.environ.get("SYNTHETIC_WRITE_ONLY"):
        llama_cpp = None
    else:
        import llama_cpp
    doc = {"about": "tests/goldens/make_synthetic.py", "llama_cpp_python": llama_cpp and llama_cpp.__version__,
           "n_ctx": N_CTX, "models": keep}
    # SYNTHETIC_KEEP=dir keeps (and reuses) the written GGUF files there.
    keep_dir = os.environ.get("SYNTHETIC_KEEP")
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            for ty in formats:
                rec = recipe(family, ty)
                gpath = pathlib.Path(keep_dir or tmp) / f"{rec['name']}.gguf"
                if keep_dir and gpath.exists():
                    n_vocab = len(next(v for k, v, _, _ in vocab_fields(rec["vocab"]) if k == "tokenizer.ggml.tokens"))
                else:
                    n_vocab = write_gguf(rec, gpath)
                if os.environ.get("SYNTHETIC_WRITE_ONLY"):
                    print("wrote", gpath, flush=True)
                    continue
                got_vocab, prompts, logits = run_llama(gpath, rec)
                assert got_vocab == n_vocab
                rec["n_vocab"] = n_vocab
                rec["prompts"] = prompts
                logits.tofile(OUT / f"{rec['name']}.f16")
                doc["models"].append(rec)
    if os.environ.get("SYNTHETIC_WRITE_ONLY"):
        return
    doc["models"].sort(key=lambda m: (list(FAMILIES).index(m["family"]), FORMATS.index(m["format"])))
    path.write_text(json.dumps(doc, indent=None, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
