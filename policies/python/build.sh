#!/usr/bin/env bash
# Build the Python policies into components with componentize-py:
#   policies/python/build.sh OUT_DIR
# Each policy is a directory with an app.py; the table below names the
# world (hook) it implements.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wit="$here/../../wit"
out="${1:?usage: build.sh OUT_DIR}"
mkdir -p "$out"
while read -r name world; do
  wasm="$out/${name//-/_}.wasm"
  # Rebuild only when a source or the contract changed.
  if [ ! -f "$wasm" ] || [ -n "$(find "$here/$name" "$wit" -newer "$wasm" -type f -print -quit)" ]; then
    componentize-py -d "$wit" -w "$world" componentize -p "$here/$name" app -o "$wasm" >/dev/null
  fi
done <<'POLICIES'
data-class key-selector
sandbox-probe sse-validator
POLICIES
