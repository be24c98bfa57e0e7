#!/usr/bin/env bash
# The pre-push check: formatting, clippy with warnings as errors, then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# No file imports back up inside a crate.
for crate in primitives storage executor trie mempool consensus da sequencer rpc workload node; do
  python3 scripts/module-deps.py "crates/$crate/src" > /dev/null
done
./scripts/test.sh "$@"
