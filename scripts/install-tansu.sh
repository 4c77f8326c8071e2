#!/usr/bin/env bash
# Installs the tansu Kafka-protocol broker used by the end-to-end tests (tests/serve_broker.rs)
# and the serve benchmark, from crates.io, into ~/.cache/memaudit/tansu (MEMAUDIT_TANSU_DIR).
# Features: `libsql` for the `sqlite://` storage engine the tests run on (it answers a fetch at
# an offset inside a record batch with that offset, as Kafka does), and `dynostore` for the
# `memory://` engine, which skips to the next batch instead: one test keeps it to show that the
# daemon detects the gap.
# The build takes 10-20 minutes on 2 cores; the binary is cached, so a re-run is instant.
# Prints the binary's path.
set -euo pipefail
version=0.6.0
features=libsql,dynostore
root=${MEMAUDIT_TANSU_DIR:-$HOME/.cache/memaudit/tansu}
bin=$root/bin/tansu
if [ -x "$bin" ] && [ "$(cat "$root/version" 2>/dev/null)" = "$version $features" ]; then
  echo "$bin"
  exit 0
fi
echo "building tansu $version (cached in $root; 10-20 minutes on 2 cores)" >&2
CARGO_TARGET_DIR=${CARGO_TARGET_DIR_TANSU:-$root/build} \
  cargo install --locked --quiet tansu --version "$version" --features "$features" --root "$root" >&2
echo "$version $features" > "$root/version"
rm -rf "$root/build"
echo "$bin"
