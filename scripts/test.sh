#!/usr/bin/env bash
# The README's test command: installs what the tests need (the default model, cached after the
# first run), then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
MEMAUDIT_MODEL=$(scripts/fetch-model.sh)
export MEMAUDIT_MODEL
cargo test --locked "$@"
