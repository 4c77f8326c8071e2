#!/usr/bin/env bash
# The README's test command: installs what the tests need (the default model and the tansu
# broker, both cached after the first run), then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
MEMAUDIT_MODEL=$(scripts/fetch-model.sh)
MEMAUDIT_TANSU=$(scripts/install-tansu.sh)
export MEMAUDIT_MODEL MEMAUDIT_TANSU
cargo test --locked "$@"
