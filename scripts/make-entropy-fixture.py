#!/usr/bin/env python3
"""Writes tests/fixtures/entropy-llamacpp.json: llama.cpp's per-position next-token entropy and the
surprisal of the actual next token (nats) for a few texts, with the default model's Q4_1 weights.
The probe's f32 forward pass is tested against it within a tolerance.

Run once by a developer (the fixture is committed):
  /tmp/llama/bin/pip install llama-cpp-python numpy
  /tmp/llama/bin/python scripts/make-entropy-fixture.py "$(scripts/fetch-model.sh)"
"""
import json
import sys

import llama_cpp
import numpy as np

TEXTS = [
    "The licenses for most software and other practical works are designed to take away your freedom to share and change the works.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "The migrating cranes circled the reservoir twice before settling on the frozen sandbar at dusk.",
]


def main():
    llm = llama_cpp.Llama(model_path=sys.argv[1], logits_all=True, n_ctx=512, n_threads=2, verbose=False)
    rows = []
    for t in TEXTS:
        ids = llm.tokenize(t.encode("utf-8"), add_bos=False, special=False)
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[: len(ids)], dtype=np.float64)
        logp = logits - logits.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        entropy = -(np.exp(logp) * logp).sum(axis=1)
        surprisal = [-logp[i, ids[i + 1]] for i in range(len(ids) - 1)]
        rows.append({"text": t, "ids": ids, "entropy": [round(float(x), 5) for x in entropy],
                     "surprisal": [round(float(x), 5) for x in surprisal]})
    out = {"model": "SmolLM2-135M-Instruct.Q4_1.gguf", "llama_cpp_python": llama_cpp.__version__, "texts": rows}
    with open("tests/fixtures/entropy-llamacpp.json", "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False)
        fh.write("\n")


if __name__ == "__main__":
    main()
