#!/usr/bin/env python3
"""Benchmark peer for the probe: llama-cpp-python scoring texts with the same GGUF, all positions
(logits_all=True), 2 threads, entropies computed in numpy as a user of it would.

  peer-llama-cpp.py MODEL.gguf TOKENS.json  -> JSON {"tokens_per_s": ...}
TOKENS.json is a list of token-id lists; each is evaluated once to warm up, then timed.
"""
import json
import sys
import time

import llama_cpp
import numpy as np


def main():
    model, path = sys.argv[1], sys.argv[2]
    texts = json.load(open(path))
    n_ctx = max(len(t) for t in texts) + 8
    llm = llama_cpp.Llama(model_path=model, logits_all=True, n_ctx=n_ctx, n_batch=n_ctx, n_threads=2, verbose=False)

    def score(ids):
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
        logp = logits - logits.max(axis=1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
        return -(np.exp(logp) * logp).sum(axis=1)

    score(texts[0])
    t = time.perf_counter()
    total = 0
    for ids in texts:
        score(ids)
        total += len(ids)
    print(json.dumps({"tokens_per_s": total / (time.perf_counter() - t)}))


if __name__ == "__main__":
    main()
