#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer-llamacpp.json: llama.cpp's tokenization of a fixed set of texts
with the default model, the reference memaudit's GGUF-built tokenizer is tested against.

Run once by a developer (the fixture is committed):
  python3 -m venv /tmp/llama && /tmp/llama/bin/pip install llama-cpp-python
  /tmp/llama/bin/python scripts/make-tokenizer-fixture.py "$(scripts/fetch-model.sh)"
Tokenized as plain text: add_bos=False, special=False (control tokens in the text are not parsed).
"""
import json
import sys

import llama_cpp

TEXTS = [
    "Hello world",
    "The licenses for most software and other practical works are designed to take away your freedom.",
    "  leading spaces, trailing spaces   ",
    "line one\nline two\n\n\tindented\r\nwindows",
    "def main(argv):\n    for i in range(10):\n        print(f\"{i:03d}\")\n    return 0\n",
    "Numbers: 12345, 3.14159, -42, 1e10, 2024-11-24, 0xDEADBEEF",
    "Contractions: don't, I'm, we've, they'll, she'd, it's, DON'T",
    "Accents: café, naïve, Zürich, São Paulo, Ångström",
    "CJK: 日本語のテキスト、中文文本，한국어 텍스트",
    "Emoji 🎉🚀 and symbols ©®™ ∑∫√ → ←",
    "<|im_start|>user\nliteral control tokens<|im_end|>",
    "fn spans(&self, text: &str) -> Vec<(usize, usize)> { /* … */ }",
    "    ",
    "a",
    "URL: https://example.org/path?q=1&r=2#frag and email a.b@c.de",
    "MiXeD CaSe AND ALLCAPS words, snake_case and camelCase",
    "Это русский текст. Ελληνικά. עברית. العربية.",
    "Repeated!!!!!!!! ???? ...... ------",
]


def main():
    path = sys.argv[1]
    llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
    rows = [{"text": t, "ids": llm.tokenize(t.encode("utf-8"), add_bos=False, special=False)} for t in TEXTS]
    out = {"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "llama_cpp_python": llama_cpp.__version__, "texts": rows}
    with open("tests/fixtures/tokenizer-llamacpp.json", "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False, indent=1)
        fh.write("\n")


if __name__ == "__main__":
    main()
