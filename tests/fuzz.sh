#!/usr/bin/env bash
# Coverage-guided fuzzing of kgw-core (fuzz/): builds the targets with
# libFuzzer and SanitizerCoverage on the stable toolchain (the flags
# cargo-fuzz uses, without a sanitizer runtime), then runs each target for
# a bounded time, starting from the committed corpus. A crash stops the
# run and leaves its input in fuzz/artifacts/<target>/: add it to
# fuzz/regressions/<target>/ with the fix (the replay test keeps it fixed).
#
# Usage: tests/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   (default 20 s, all)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECONDS_PER_TARGET="${1:-20}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(record part_table range sse_headers kms_config bucket_policy)
fi

export RUSTFLAGS="-Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# Its own target dir: instrumented code must not mix with the plain build.
export CARGO_TARGET_DIR="$PWD/target/fuzz"
# An explicit target keeps the flags off build scripts and proc macros.
HOST=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --locked --bins --quiet --target "$HOST"
BIN="$CARGO_TARGET_DIR/$HOST/release"

for t in "${TARGETS[@]}"; do
  # The committed corpus is the seed; what a run learns goes to a scratch
  # corpus (first directory), so the repository does not change.
  work="target/corpus/$t"
  mkdir -p "$work" "artifacts/$t"
  echo "fuzz $t: ${SECONDS_PER_TARGET}s"
  "$BIN/$t" "$work" "corpus/$t" \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 |
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|thread .* panicked|Done)" || true
  # libFuzzer exits non-zero on a crash; the pipe hides it, the artifact does not.
  if compgen -G "artifacts/$t/crash-*" >/dev/null || compgen -G "artifacts/$t/timeout-*" >/dev/null \
     || compgen -G "artifacts/$t/oom-*" >/dev/null; then
    echo "fuzz $t found a failing input:" artifacts/"$t"/* >&2
    exit 1
  fi
done
