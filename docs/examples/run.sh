#!/usr/bin/env bash
# Runs every webhook-verification example in docs/examples against the
# signature test vectors, for each language whose interpreter is installed.
# Exits non-zero if any example that ran failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

vectors=testdata/signature-vectors.json
failed=()

run() {
  local lang=$1 tool=$2
  shift 2
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "skipped: $lang not installed"
    return 0
  fi
  echo "== $lang: $*"
  if "$@"; then
    :
  else
    echo "FAILED: $lang (exit $?)"
    failed+=("$lang")
  fi
}

run go go go run docs/examples/verify.go "$vectors"
run node node node docs/examples/verify.js "$vectors"
run python3 python3 python3 docs/examples/verify.py "$vectors"
run php php php docs/examples/verify.php "$vectors"

if ((${#failed[@]} > 0)); then
  echo "failed: ${failed[*]}"
  exit 1
fi
echo "all examples that ran passed"
