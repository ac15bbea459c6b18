#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian 12 machine.
# Idempotent: a second run checks and does nothing (no apt-get update, no cargo install).
# See ../shared/TOOLCHAIN.md for why each piece is here.
set -euo pipefail

# Debian packages: the BPF toolchain (TOOLCHAIN.md §1), tools the tests drive, peers the
# tests and benchmarks compare against, headless Chromium for the stats page screenshot.
# gcc and make build jemalloc, the daemon's allocator (tikv-jemalloc-sys).
PACKAGES=(
  rustc-web cargo-web libstd-rust-web-dev-bpf gcc make
  llvm-22-dev libpolly-22-dev libclang-22-dev clang-22
  bpftool iproute2 ethtool nftables curl procps psmisc
  haproxy keepalived nginx-light wrk nghttp2-client
  dpkg-dev binutils systemd
  chromium
)
BPF_LINKER_VERSION=0.13.0
# Builds the Debian package (cargo xtask deb; dpkg-dev and binutils above are its helpers,
# systemd's systemd-analyze verifies the unit in tests/tests/packaging.rs).
CARGO_DEB_VERSION=3.8.0

log() { printf 'install-deps: %s\n' "$*" >&2; }

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The peers are test tools, not services of this machine.
  for svc in haproxy keepalived nginx; do
    systemctl disable --now "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
    pkill -x "$svc" >/dev/null 2>&1 || true
  done
else
  log "Debian packages: all present"
fi

# bpf-linker against Debian's LLVM 22 (TOOLCHAIN.md §2).
export PATH="$HOME/.cargo/bin:$PATH"
if bpf-linker --version 2>/dev/null | grep -q "$BPF_LINKER_VERSION"; then
  log "bpf-linker $BPF_LINKER_VERSION: present"
else
  log "building bpf-linker $BPF_LINKER_VERSION against LLVM 22 (about a minute)"
  LLVM_PREFIX=/usr/lib/llvm-22 LLVM_SYS_221_PREFIX=/usr/lib/llvm-22 \
    cargo install --locked bpf-linker --version "$BPF_LINKER_VERSION" \
      --no-default-features --features llvm-22
fi

if cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  log "cargo-deb $CARGO_DEB_VERSION: present"
else
  log "building cargo-deb $CARGO_DEB_VERSION (a few minutes)"
  cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

# bpffs: where pinned maps live.
if ! mount | grep -q ' type bpf '; then
  log "mounting bpffs on /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
fi
