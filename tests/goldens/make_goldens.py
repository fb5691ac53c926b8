#!/usr/bin/env python3
"""Writes llama.cpp reference outputs for the parity tests (tests/parity.rs).

Not run in CI: it needs `pip install llama-cpp-python` (builds llama.cpp from source).
For each prompt it records llama.cpp's prompt token ids, up to 64 greedy tokens (stopping at an end-of-generation
token), the
top-1/top-2 logit gap at every greedy step, and the full logit vector (as float16) at
the first 8 decode positions (the last prompt position and the next 7 greedy steps).

Usage: python3 tests/goldens/make_goldens.py [smollm2|gemma3|qwen25|qwen25_1_5b]
Output: tests/goldens/<set>.json and tests/goldens/<set>_logits.f16
"""
import json
import pathlib
import sys

import numpy as np
import llama_cpp

HERE = pathlib.Path(__file__).resolve().parent
CACHE = HERE.parent.parent / "models/cache"
SETS = {
    # name: (model file, greedy tokens, logit positions recorded per prompt)
    "smollm2": ("SmolLM2-135M-Instruct.Q4_1.gguf", 64, 8),
    # Gemma's vocabulary is 262144: record fewer positions to keep the file small.
    "gemma3": ("gemma-3-270m-q4_k_m.gguf", 32, 2),
    # Qwen2.5's vocabulary is 151936: likewise. The 1.5B is checked by hand (an ignored test).
    "qwen25": ("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 32, 2),
    "qwen25_1_5b": ("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf", 32, 1),
}
SET = sys.argv[1] if len(sys.argv) > 1 else "smollm2"
MODEL = CACHE / SETS[SET][0]
N_GREEDY = SETS[SET][1]
N_LOGIT_POS = SETS[SET][2]
GAP_EXACT = 0.5
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml(turns):
    """SmolLM2's template: ChatML, with its default system prompt when none is given."""
    out = ""
    if turns[0][0] != "system":
        out += f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
    for role, content in turns:
        out += f"<|im_start|>{role}\n{content}<|im_end|>\n"
    return out + "<|im_start|>assistant\n"


SMOLLM2_PROMPTS = [
    {"name": "chat_2plus2", "kind": "chat", "messages": [["user", "What is 2+2?"]]},
    {"name": "chat_france", "kind": "chat", "messages": [["user", "What is the capital of France?"]]},
    {"name": "chat_colors", "kind": "chat", "messages": [["user", "List three primary colors."]]},
    {"name": "chat_haiku", "kind": "chat", "messages": [["user", "Write a haiku about the sea."]]},
    {"name": "chat_multiturn", "kind": "chat", "messages": [
        ["system", "You are a terse assistant."],
        ["user", "Name a fruit."], ["assistant", "Apple."],
        ["user", "Name another one."]]},
    {"name": "raw_fox", "kind": "raw", "text": "The quick brown fox"},
    {"name": "raw_fib", "kind": "raw", "text": "def fibonacci(n):"},
    {"name": "raw_story", "kind": "raw", "text": "Once upon a time, there was a little"},
]

# Gemma 3 270M is a base model (no chat template): raw prompts, one longer than its
# 512-token sliding window so the window is exercised.
LONG = " ".join(f"Entry {i}: the {w} costs {i * 7 % 100} coins." for i, w in enumerate(
    ["apple", "lamp", "chair", "river", "stone", "cloud", "bread", "violin"] * 12)) + " Summary: the apple costs"
GEMMA3_PROMPTS = [
    {"name": "raw_capital", "kind": "raw", "text": "The capital of France is"},
    {"name": "raw_quicksort", "kind": "raw", "text": "def quicksort(arr):"},
    {"name": "raw_water", "kind": "raw", "text": "Water boils at a temperature of"},
    {"name": "raw_story", "kind": "raw", "text": "Once upon a time, in a small village,"},
    {"name": "raw_long_window", "kind": "raw", "text": LONG},
]
# Qwen2.5-Coder Instruct: chat prompts rendered with the model's own template (see
# `hf_template`), which adds Qwen's default system prompt when none is given; raw prompts
# too, one of ~200 tokens so prefill spans several of Hearth's 64-token batches.
CODE = "\n".join(f"def f{i}(x):\n    return x * {i} + {i * i % 17}\n" for i in range(12)) + "\ndef main():\n    print("
QWEN25_PROMPTS = [
    {"name": "chat_reverse", "kind": "chat", "messages": [["user", "Write a Python function that reverses a string."]]},
    {"name": "chat_2plus2", "kind": "chat", "messages": [["user", "What is 2+2?"]]},
    {"name": "chat_sql", "kind": "chat", "messages": [["user", "Write a SQL query that counts the rows of the table users."]]},
    {"name": "chat_system", "kind": "chat", "messages": [
        ["system", "You are a terse assistant. Answer in one line."], ["user", "Name a sorting algorithm."]]},
    {"name": "chat_multiturn", "kind": "chat", "messages": [
        ["user", "Name a fruit."], ["assistant", "Apple."], ["user", "Name another one."]]},
    {"name": "raw_quicksort", "kind": "raw", "text": "def quicksort(arr):"},
    {"name": "raw_capital", "kind": "raw", "text": "The capital of France is"},
    {"name": "raw_code_long", "kind": "raw", "text": CODE},
]
PROMPTS = {"smollm2": SMOLLM2_PROMPTS, "gemma3": GEMMA3_PROMPTS,
           "qwen25": QWEN25_PROMPTS, "qwen25_1_5b": QWEN25_PROMPTS}[SET]
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def hf_template(llm):
    """The GGUF's `tokenizer.chat_template`, rendered as Hugging Face transformers renders it
    (sandboxed Jinja2, trim_blocks, lstrip_blocks), independently of Hearth's minijinja."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    tmpl = env.from_string(llm.metadata["tokenizer.chat_template"])

    def render(turns):
        return tmpl.render(messages=[{"role": r, "content": c} for r, c in turns], add_generation_prompt=True)
    return render


def main():
    llm = llama_cpp.Llama(model_path=str(MODEL), n_ctx=2048, n_batch=512, logits_all=True,
                          n_threads=2, seed=0, verbose=False)
    n_vocab = llm.n_vocab()
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    out = {"model": MODEL.name, "llama_cpp_python": llama_cpp.__version__, "n_vocab": n_vocab,
           "gap_exact": GAP_EXACT, "n_logit_positions": N_LOGIT_POS, "prompts": []}
    logits_blob = []
    render = hf_template(llm) if SET.startswith("qwen25") else chatml
    for p in PROMPTS:
        text = render(p["messages"]) if p["kind"] == "chat" else p["text"]
        if SET.startswith("qwen25") and p["kind"] == "chat":
            assert (QWEN_SYSTEM in text) == (p["messages"][0][0] != "system"), text
        ids = llm.tokenize(text.encode(), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        greedy, gaps = [], []
        for step in range(N_GREEDY):
            logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            if step < N_LOGIT_POS:
                logits_blob.append(logits.astype(np.float16))
            top2 = np.argsort(logits)[-2:]
            tok = int(top2[1])
            greedy.append(tok)
            gaps.append(float(logits[top2[1]] - logits[top2[0]]))
            if llama_cpp.llama_vocab_is_eog(vocab, tok):
                break
            llm.eval([tok])
        exact_prefix = next((i for i, g in enumerate(gaps) if g < GAP_EXACT), len(gaps))
        entry = dict(p, prompt=text, prompt_ids=ids, greedy=greedy, gaps=gaps,
                     min_gap=min(gaps), exact_prefix=exact_prefix, n_logits=min(len(gaps), N_LOGIT_POS),
                     qualifies=exact_prefix == len(gaps),
                     text=llm.detokenize(greedy).decode("utf-8", "replace"))
        out["prompts"].append(entry)
        print(f"{p['name']:16} prompt={len(ids):3} min_gap={min(gaps):.3f} "
              f"exact_prefix={exact_prefix:2} {entry['text'][:60]!r}")
    (HERE / f"{SET}.json").write_text(json.dumps(out, indent=1))
    np.concatenate(logits_blob).tofile(HERE / f"{SET}_logits.f16")


if __name__ == "__main__":
    main()
