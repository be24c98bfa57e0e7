#!/usr/bin/env bash
# Runs Cairn's whole test suite on a fresh machine: installs the external clients the
# end-to-end tests drive (Foundry's cast and anvil, and viem, from npm, pinned in tools/), then
# runs every Rust test (unit, property, ethereum/tests fixtures, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
# `npm ci` would refuse npm 11's lock (it omits other platforms' optional binaries);
# versions are pinned exactly, so `npm install` against the lock installs the same.
(cd tools && npm install --no-audit --no-fund --loglevel=error)
cargo test --workspace --locked "$@"
