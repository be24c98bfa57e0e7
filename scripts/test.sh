#!/usr/bin/env bash
# Runs Cairn's whole test suite on a fresh machine: installs the external clients the
# end-to-end tests drive (Foundry's cast and anvil, viem, ethers and solc-js from npm, pinned in
# tools/; jsonschema from PyPI into tools/python), then
# runs every Rust test (unit, property, ethereum/tests fixtures, end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."
# `npm ci` would refuse npm 11's lock (it omits other platforms' optional binaries);
# versions are pinned exactly, so `npm install` against the lock installs the same.
(cd tools && npm install --no-audit --no-fund --loglevel=error)
# Python packages (the Execution APIs schema check, web3.py), into tools/python, not the
# system; installed again only when tools/requirements.txt changes.
if ! cmp -s tools/requirements.txt tools/python/.installed-requirements 2>/dev/null; then
  rm -rf tools/python
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target tools/python -r tools/requirements.txt
  cp tools/requirements.txt tools/python/.installed-requirements
fi
# The `celestia` DA backend is behind a cargo feature (it cannot run here): compiled,
# linted and its unit tests run, with the node's wiring checked.
if [ $# -eq 0 ]; then
  cargo test -p cairn-da --features celestia --locked --lib
  cargo clippy -p cairn-da -p cairn-node --features celestia --locked -- -D warnings
fi
cargo test --workspace --locked "$@"
