#!/usr/bin/env python3
"""Writes tests/goldens/templates/expected.json: chat templates rendered by Jinja2 the way
Hugging Face transformers renders them (ImmutableSandboxedEnvironment, trim_blocks,
lstrip_blocks, raise_exception). Run from the repository root:

    python3 tests/goldens/make_template_goldens.py

SmolLM2's template is copied out of the model file (`make models`) into
tests/goldens/templates/SmolLM2-135M-Instruct.jinja; Qwen2.5's comes from llama.cpp's
models/templates/, Gemma 3's from google/gemma-3-*-it tokenizer_config.json. Needs
`pip install jinja2 gguf`. Not run in CI: tests/template_goldens.rs reads the JSON.
"""
import json
import os

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

DIR = "tests/goldens/templates"
MODEL = "models/cache/SmolLM2-135M-Instruct.Q4_1.gguf"

# name -> (file, bos_token, eos_token)
TEMPLATES = {
    "smollm2": ("SmolLM2-135M-Instruct.jinja", "<|im_start|>", "<|im_end|>"),
    "qwen2.5": ("Qwen-Qwen2.5-7B-Instruct.jinja", "<|endoftext|>", "<|im_end|>"),
    "gemma3": ("google-gemma-3-it.jinja", "<bos>", "<eos>"),
}

CONVERSATIONS = {
    "user": [{"role": "user", "content": "Hello!"}],
    "system_user": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "multi_turn": [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "  Tell me a joke.\n"},
    ],
    "system_multi_turn": [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Good morning"},
        {"role": "assistant", "content": "Bonjour !"},
        {"role": "user", "content": "Merci, à bientôt 🙂"},
    ],
    "bad_order": [
        {"role": "assistant", "content": "I speak first"},
        {"role": "user", "content": "ok"},
    ],
}


def raise_exception(message):
    raise TemplateError(message)


def save_smollm2_template():
    from gguf import GGUFReader

    reader = GGUFReader(MODEL)
    field = reader.fields["tokenizer.chat_template"]
    text = bytes(field.parts[field.data[0]]).decode("utf-8")
    with open(os.path.join(DIR, TEMPLATES["smollm2"][0]), "w", encoding="utf-8") as f:
        f.write(text)


def main():
    if os.path.exists(MODEL):
        save_smollm2_template()
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    cases = []
    for name, (file, bos, eos) in TEMPLATES.items():
        with open(os.path.join(DIR, file), encoding="utf-8") as f:
            template = env.from_string(f.read())
        for conv_name, messages in CONVERSATIONS.items():
            for add_generation_prompt in (False, True):
                case = {
                    "template": name,
                    "file": file,
                    "bos_token": bos,
                    "eos_token": eos,
                    "conversation": conv_name,
                    "messages": messages,
                    "add_generation_prompt": add_generation_prompt,
                }
                try:
                    case["expected"] = template.render(
                        messages=messages, add_generation_prompt=add_generation_prompt,
                        bos_token=bos, eos_token=eos)
                except TemplateError as e:
                    case["error"] = str(e)
                cases.append(case)
    with open(os.path.join(DIR, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"reference": "jinja2 (transformers' chat template settings)", "cases": cases},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(cases)} cases")


if __name__ == "__main__":
    main()
