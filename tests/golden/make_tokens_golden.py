#!/usr/bin/env python3
"""Golden token ids for the wrappers' tokenizer tests, made with Hugging Face
`tokenizers` (the reference the native tokenizer is checked against live in
tests/python/test_tokenizer.py). The Go, Java and Rust wrapper tests encode
the same strings through ktq and compare with these ids, without needing
`tokenizers` themselves.

    pip install tokenizers && python3 tests/golden/make_tokens_golden.py [SHARED_DIR]
"""
import json
import os
import sys

from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "..", "shared")
MODELS = ["tiny-qwen3-moe"]  # the shared models share one tokenizer.json
TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.\n\n  Indented line\twith tab",
    "Numbers 1234567 and 3.14159, dates 2026-11-25.",
    "日本語のテキストと中文文本。",
    "Привет, мир! Ünïcödé àccents",
    "emoji 👍🏽 family 👨‍👩‍👧 and zero\u200bwidth and nbsp\u00a0here",
    "",
]


def main():
    out = {"generator": f"tokenizers {__import__('tokenizers').__version__}", "models": {}}
    for model in MODELS:
        tok = Tokenizer.from_file(os.path.join(SHARED, "models", model, "tokenizer.json"))
        out["models"][model] = [{"text": t, "ids": tok.encode(t).ids} for t in TEXTS]
    with open(os.path.join(HERE, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
