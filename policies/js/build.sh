#!/usr/bin/env bash
# Build the JavaScript policies into components with componentize-js (the
# Bytecode Alliance's, pinned in package-lock.json):
#   policies/js/build.sh OUT_DIR
# Each policy is a directory with an app.js; the table below names the
# world (hook) it implements. Every WASI feature is disabled, so the
# components import nothing: they load as pure policies.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wit="$here/../../wit"
out="${1:?usage: build.sh OUT_DIR}"
mkdir -p "$out"
if [ ! -x "$here/node_modules/.bin/componentize-js" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --silent)
fi
while read -r name world; do
  wasm="$out/${name//-/_}.wasm"
  # Rebuild only when a source or the contract changed.
  if [ ! -f "$wasm" ] || [ -n "$(find "$here/$name" "$wit" -newer "$wasm" -type f -print -quit)" ]; then
    "$here/node_modules/.bin/componentize-js" "$here/$name/app.js" --wit "$wit" -n "$world" \
      -d stdio random clocks http fetch-event -o "$wasm" >/dev/null
  fi
done <<'POLICIES'
tenant-reads sse-validator
POLICIES
