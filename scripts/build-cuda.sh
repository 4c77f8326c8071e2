#!/usr/bin/env bash
# Builds with --features cuda what scripts/gpu-check.sh runs on a GPU machine: the memaudit binary,
# the tests/model_cuda.rs test binary and the probe benchmark, stripped, into DIR.
#
#   scripts/build-cuda.sh [DIR]        (default target/cuda/dist)
#
# Needs no GPU: scripts/install-cuda.sh supplies nvcc, the headers and the link libraries. Kernels
# are built for CUDA_COMPUTE_CAP (default 90). Builds in target/cuda, apart from the CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/cuda/dist}
eval "$(scripts/install-cuda.sh)"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
executable() { # cargo's JSON messages on stdin -> the one test or bench executable they name
  python3 -c 'import json, sys
paths = [m["executable"] for m in map(json.loads, sys.stdin)
         if m.get("executable") and m["profile"]["test"]]
assert len(paths) == 1, paths
print(paths[0])'
}
cargo build --locked --release --features cuda --bin memaudit
test=$(cargo test --locked --release --features cuda --test model_cuda --no-run \
  --message-format=json | executable)
bench=$(cargo bench --locked --features cuda --bench probe --no-run --message-format=json |
  executable)
mkdir -p "$out"
strip -o "$out/memaudit" "$CARGO_TARGET_DIR/release/memaudit"
strip -o "$out/model_cuda" "$test"
strip -o "$out/probe" "$bench"
ls -l "$out"
