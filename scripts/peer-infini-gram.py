#!/usr/bin/env python3
"""Drives the benchmark peer, infini-gram 2.6.0 (PyPI), byte-level (--token_dtype u8, no tokenizer).

  peer-infini-gram.py build DATA_DIR SAVE_DIR     -> JSON {seconds, input_bytes, peak_rss_bytes}
  peer-infini-gram.py attribute SAVE_DIR QUERIES  -> JSON {latencies_ms: [...], spans: [...]}

QUERIES is a JSON list of strings. attribute() runs with min_len 50 bytes (memaudit's default
minimum span, 50 characters), no delimiters, max_cnt 3 (memaudit reports 3 provenance hits), on the
UTF-8 bytes of each text, one query at a time on one thread, after one warm-up pass, so the page
cache is warm as it is for memaudit. Run by `cargo bench --bench index -- --peer`.
"""

import json
import os
import resource
import subprocess
import sys
import time


def build(data_dir, save_dir):
    data_dir, save_dir = os.path.abspath(data_dir), os.path.abspath(save_dir)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data_dir) for f in fs)
    t = time.time()
    subprocess.run(
        [sys.executable, "-m", "infini_gram.indexing", "--data_dir", data_dir, "--save_dir", save_dir,
         "--token_dtype", "u8", "--cpus", str(os.cpu_count()), "--mem", "16", "--shards", "1",
         "--add_metadata", "--ulimit", str(resource.getrlimit(resource.RLIMIT_NOFILE)[1])],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    seconds = time.time() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "input_bytes": size, "peak_rss_bytes": peak}))


def attribute(save_dir, queries_path):
    from infini_gram.engine import InfiniGramEngine

    engine = InfiniGramEngine(index_dir=os.path.abspath(save_dir), eos_token_id=254, vocab_size=255,
                              token_dtype="u8", version=4)
    queries = [list(q.encode("utf-8")) for q in json.load(open(queries_path))]
    for q in queries:  # warm-up
        engine.attribute(input_ids=q, delim_ids=[], min_len=50, max_cnt=3, enforce_bow=False)
    lat, spans = [], []
    for q in queries:
        t = time.perf_counter()
        r = engine.attribute(input_ids=q, delim_ids=[], min_len=50, max_cnt=3, enforce_bow=False)
        lat.append((time.perf_counter() - t) * 1000)
        spans.append(max((s["length"] for s in r.get("spans", [])), default=0))
    print(json.dumps({"latencies_ms": lat, "longest": spans}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "build":
        build(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "attribute":
        attribute(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
