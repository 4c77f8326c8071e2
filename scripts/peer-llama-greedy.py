#!/usr/bin/env python3
"""Benchmark peer for `memaudit audit`: llama-cpp-python greedy-decoding the same rows with the
same GGUF, one row at a time as a user's script would (2 threads, end-of-text masked as the
paper's authors' generate() did).

  peer-llama-greedy.py MODEL.gguf ROWS.json  -> JSON {"rows_per_s": ..., "generated": [[...]]}
ROWS.json: {"context": C, "continuation": K, "eos": id or null, "rows": [[C+K ids], ...]}.
"""
import json
import sys
import time

import llama_cpp
import numpy as np


def main():
    model, path = sys.argv[1], sys.argv[2]
    spec = json.load(open(path))
    c, k, eos = spec["context"], spec["continuation"], spec["eos"]
    llm = llama_cpp.Llama(model_path=model, n_ctx=c + k + 8, n_batch=c + k + 8, n_threads=2, verbose=False)

    n_vocab = llm.n_vocab()

    def greedy(ctx):
        llm.reset()
        llm.eval(ctx)
        out = []
        for _ in range(k):
            # The last evaluated position's logits, straight from llama.cpp (llm.scores is only
            # filled with logits_all=True, which would project every context position too).
            ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float32)
            if eos is not None:
                logits[eos] = -np.inf
            t = int(np.argmax(logits))
            out.append(t)
            llm.eval([t])
        return out

    greedy(spec["rows"][0][:c])
    t = time.perf_counter()
    generated = [greedy(r[:c]) for r in spec["rows"]]
    print(json.dumps({"rows_per_s": len(generated) / (time.perf_counter() - t), "generated": generated}))


if __name__ == "__main__":
    main()
