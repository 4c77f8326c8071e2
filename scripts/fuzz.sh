#!/usr/bin/env bash
# Coverage-guided fuzzing of span search, near chaining, the streamed-output state machine and
# message decoding (fuzz/fuzz_targets), with cargo-fuzz and libFuzzer on the stable toolchain
# (`--sanitizer none`: the sanitizers need nightly; Rust code is memory-safe without them and
# the targets check their own invariants).
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]     SECONDS per target (60); every target by default
#
# Each run first replays the inputs committed under fuzz/regressions/TARGET (earlier findings),
# then fuzzes from fuzz/corpus/TARGET (kept between runs, not committed). A slow input (over
# 10 s), a greedy one (over 1 GiB resident) and a failed check are all crashes: the input is
# written to fuzz/artifacts/TARGET and the script fails. Reproduce one with
#   cd fuzz && cargo fuzz run --sanitizer none -O TARGET artifacts/TARGET/crash-...
# and, once fixed, commit it under fuzz/regressions/TARGET.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(span_search near_chaining streams decode)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz from crates.io"
    cargo install cargo-fuzz --locked --version 0.13.2
fi
echo "== building the fuzz targets (instrumented, release)"
cargo fuzz build --sanitizer none -O

for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${seconds}s"
    mkdir -p "corpus/$t" "regressions/$t"
    log="artifacts/$t.log"
    mkdir -p artifacts
    rc=0
    cargo fuzz run --sanitizer none -O "$t" "corpus/$t" "regressions/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -max_len=4096 \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E '^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|stat::peak_rss_mb)|panicked|SUMMARY|ERROR|Test unit written|left:|right:' "$log" || true
    [ "$rc" -eq 0 ] || { echo "fuzz target $t failed (rc $rc): the whole log is fuzz/$log"; exit 1; }
done
