#!/usr/bin/env bash
# Line coverage of the workspace with cargo-tarpaulin (installed from crates.io when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo tarpaulin --version >/dev/null 2>&1; then
  cargo install cargo-tarpaulin --locked
fi
export PATH="$PWD/scripts:$PATH"
cargo tarpaulin --workspace --lib --bins --tests --skip-clean --out Stdout --timeout 600 "$@"
