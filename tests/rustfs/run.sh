#!/usr/bin/env bash
# The end-to-end suite in front of a single-node RustFS, by hand (it is not
# part of tests/run.sh: the first RustFS build takes about an hour):
#   tests/rustfs/run.sh [pytest args...]
# Installs RustFS once (tests/rustfs/install.sh), builds the gateway, and
# runs tests/e2e with every session gateway's upstream a RustFS started by
# the tests. Tests that start their own gateway on the embedded store, and
# the ones about the embedded store itself, run as they do by default.
set -euo pipefail
cd "$(dirname "$0")/../.."

KGW_RUSTFS_BIN="$(tests/rustfs/install.sh)"
export KGW_RUSTFS_BIN
VENV=tests/.venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
rustup target add wasm32-wasip2 >/dev/null
(cd policies && cargo build --release --target wasm32-wasip2 --quiet)
PATH="$PWD/$VENV/bin:$PATH" policies/python/build.sh policies/target/python
policies/js/build.sh policies/target/js
cargo build -p kms-gateway -p kgw-bench --quiet
"$KGW_RUSTFS_BIN" --version || true

export PATH="$PWD/$VENV/bin:$PATH"
export KMS_GATEWAY_BIN="$PWD/target/debug/kms-gateway"
export KGW_E2E_UPSTREAMS=rustfs
"$VENV/bin/python" -m pytest tests/e2e -q -p no:cacheprovider "$@"
