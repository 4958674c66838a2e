#!/usr/bin/env bash
# Install a RustFS server binary once, into a cache outside the repository:
#   tests/rustfs/install.sh            # prints the binary's path when done
# Idempotent: a second run finds the binary and returns at once. A first
# run takes about an hour on two cores (the build), plus the toolchain.
#
# RustFS 1.0.1 needs rustc >= 1.98, so it builds with its own toolchain
# (the project itself stays on its pinned one), and protoc.
set -euo pipefail

VERSION="${RUSTFS_VERSION:-1.0.1}"
TOOLCHAIN="${RUSTFS_TOOLCHAIN:-1.99.1}"
CACHE="${KGW_RUSTFS_CACHE:-$HOME/.cache/kms-gateway/rustfs}"
BIN="$CACHE/$VERSION/bin/rustfs"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

start=$(date +%s)
mkdir -p "$CACHE"
if ! command -v protoc >/dev/null; then
  echo "installing protoc (protobuf-compiler)" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq protobuf-compiler >&2
fi
rustup toolchain install "$TOOLCHAIN" --profile minimal >&2
echo "building rustfs $VERSION with rustc $TOOLCHAIN (about an hour on two cores)" >&2
# The target dir stays in the cache: an interrupted build resumes.
CARGO_TARGET_DIR="$CACHE/target" nice -n "${RUSTFS_NICE:-10}" \
  cargo "+$TOOLCHAIN" install rustfs --version "$VERSION" --locked --no-default-features \
  --root "$CACHE/$VERSION" >&2
echo "rustfs $VERSION installed in $(( ($(date +%s) - start) / 60 )) min" >&2
echo "$BIN"
