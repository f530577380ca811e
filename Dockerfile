# syntax=docker/dockerfile:1
#
# The validator and the executor in one image. The first stage builds both binaries with the
# Rust toolchain; the runtime stage is distroless (glibc and libgcc only: no shell, no package
# manager) and runs as a non-root user. The entrypoint is the validator:
#
#   docker build -t validator .
#   docker run --rm -v "$PWD:/work:ro" -w /work validator check deploy/
#   docker run --rm --entrypoint /usr/local/bin/executor validator --help
#
# The builder (Debian 12) and the runtime (distroless Debian 12) share one glibc.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and the build directory between builds; the binaries are
# copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p validator -p executor \
    && mkdir -p /out \
    && cp target/release/validator target/release/executor /out/

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="validator" \
      org.opencontainers.image.description="Gatekeeper-compatible policy checks for Kubernetes manifests, and the rollout executor" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/validator /out/executor /usr/local/bin/
# The distroless `nonroot` user; the validator-webhook chart runs the pod with the same IDs.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/validator"]
CMD ["--help"]
