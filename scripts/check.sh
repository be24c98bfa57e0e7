#!/usr/bin/env bash
# The pre-push check: formatting, clippy with warnings as errors, then the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
./scripts/test.sh "$@"
