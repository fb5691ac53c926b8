#!/usr/bin/env python3
"""Writes tests/goldens/tokenizer_smollm2.json: llama.cpp's token ids for SmolLM2's vocabulary.

Reference: llama-cpp-python 0.3.36 (`pip install llama-cpp-python==0.3.36`), which bundles
llama.cpp. Run from the repository root after `make models`:

    python3 tests/goldens/make_tokenizer_goldens.py

Not run in CI: tests/tokenizer_parity.rs reads the committed JSON.
"""
import ctypes
import json
import sys

import llama_cpp

MODEL = "models/cache/SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = "tests/goldens/tokenizer_smollm2.json"

TEXTS = [
    "",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\n\n",
    "\n\n\n",
    "\t\n",
    " \n \n",
    "Hello world",
    " Hello world",
    "Hello World",
    "Hello, world!",
    "  Hello   world  ",
    "hello\tworld\n",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure you'll see they've done it, isn't it? We'd go, she's here.",
    "I'M SURE YOU'LL SEE THEY'VE DONE IT",
    "don't can't won't shan't y'all",
    "1",
    "12",
    "123",
    "1234",
    "12345678901234567890",
    "3.14159 2,718 1e-10 -42 +7",
    "Version 2.0.1 released on 2024-11-24 at 10:30",
    "café naïve résumé façade Ærøskøbing",
    "Zürich Straße Äpfel Öl Übermut",
    "ελληνικά Русский текст עברית العربية",
    "日本語のテキストです。",
    "中文分词测试：你好，世界！",
    "한국어 텍스트",
    "ภาษาไทย हिन्दी বাংলা",
    "emoji 🦙🔥👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵",
    "🙂",
    "mixed: English, 日本語, русский, and 🚀 rockets!",
    "def foo(x):\n    return x * 2\n",
    "fn main() {\n\tprintln!(\"{}\", 1 + 2);\n}\n",
    "for (int i = 0; i < n; ++i) { a[i] = b[i] << 2; }",
    "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
    "SELECT * FROM users WHERE id = 42;",
    "    indented with four spaces",
    "trailing spaces    ",
    "a\r\nb\r\nc",
    "multiple\n\n\nnewlines\n\n",
    "tabs\t\tand\t\t\ttabs",
    "URL: https://example.com/path?q=1&r=two#frag",
    "email: someone@example.org",
    "$100 €50 £20 ¥1000 ₿0.1",
    "!!!???...,,,;;;:::",
    "------====____****",
    "\u00a0non-breaking\u00a0space",
    "zero\u200bwidth\u200bspace",
    "<|im_start|>",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<|im_end|><|im_end|>",
    "not special: <|im_start |> <im_start> <|im_start|",
    "<|im_start|>user<|im_end|>",
    " <|im_start|> spaced",
    "<repo_name>smol<filename>a.py<file_sep>",
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.",
    "A" * 100,
    "ab" * 40,
    " " * 33,
    "\n" * 20,
    "wörd" + " " * 10 + "end",
]

COMBOS = [(False, False), (True, False), (False, True), (True, True)]


def piece(model, tok):
    buf = (ctypes.c_char * 1024)()
    n = llama_cpp.llama_token_to_piece(model.vocab, tok, buf, len(buf), 0, True)
    assert 0 <= n <= len(buf), n
    return bytes(buf[:n])


def main():
    llm = llama_cpp.Llama(model_path=MODEL, vocab_only=True, verbose=False)
    model = llm._model
    cases = []
    for text in TEXTS:
        for add_bos, special in COMBOS:
            ids = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)
            decoded = b"".join(piece(model, t) for t in ids).decode("utf-8", errors="replace")
            cases.append({"text": text, "add_bos": add_bos, "special": special, "ids": ids, "decoded": decoded})
    out = {
        "reference": f"llama-cpp-python {llama_cpp.__version__} (llama_tokenize; decoded = concatenated llama_token_to_piece with special=true)",
        "model": MODEL,
        "cases": cases,
    }
    # one case per line: small diffs when llama.cpp changes
    with open(OUT, "w", encoding="utf-8") as f:
        head = json.dumps({k: v for k, v in out.items() if k != "cases"}, ensure_ascii=False)[:-1]
        f.write(head + ', "cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")
    print(f"wrote {len(cases)} cases ({len(TEXTS)} texts) to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
