#!/usr/bin/env bash
# The seed's two-node HAProxy + Wackamole setup, rebuilt with lb in network namespaces,
# and a walk through the seed's tests with a PASS/FAIL line per claim (docs/demo.md).
#
#   scripts/demo.sh          install what is missing, build, run the demo, tear it down
#   scripts/demo.sh --keep   the same, but leave it running for poking
#   scripts/demo.sh --down   remove every lbdemo- namespace, process, pinned map and file
#
# Run as root: the demo creates network namespaces and loads XDP programs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if [ "$(id -u)" != 0 ]; then
  echo "scripts/demo.sh: run as root (the demo creates network namespaces and loads XDP programs)" >&2
  exit 1
fi

# Tearing down needs no toolchain: use the built binary when there is one.
if [ "${1:-}" = "--down" ] && [ -x target/debug/lb-demo ]; then
  exec target/debug/lb-demo --down
fi

bash scripts/install-deps.sh
cargo xtask build
cargo build --quiet -p lb-tests --bin lb-demo
exec target/debug/lb-demo "$@"
