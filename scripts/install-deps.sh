#!/usr/bin/env bash
# System packages the build and tests need (Debian): the OpenSSL headers and pkg-config for
# librdkafka's TLS support, make for its build; and for the tests, promtool (package prometheus)
# and systemd-analyze for the deployment checks. `--build`: only what the build needs.
# Does nothing when they are present.
set -euo pipefail
missing=()
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v make >/dev/null || missing+=(make)
if [ "${1:-}" != --build ]; then
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}" >&2
fi
