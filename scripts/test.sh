#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs what is missing
# (scripts/install-deps.sh, idempotent), checks formatting and lints, then runs
# `cargo xtask test` (unit tests, BPF_PROG_TEST_RUN fixtures, network-namespace tests).
# Run as root: the kernel tests need BPF and network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: run as root (the suite loads XDP programs and creates network namespaces)" >&2
  exit 1
fi

bash scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo xtask test
