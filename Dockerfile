# The services' image: bidding-service, auction-service, analytics-service and auctionctl (the web
# UI is compiled into bidding-service), on Debian bookworm, run as a non-root user, with /health as
# the container health check. The command picks the service (default: the bidding service).
#
# Two ways to build it:
#   - With a registry: `docker build -t auction-system .` compiles in the official Rust image
#     (`RUST_IMAGE`) and runs on the official Debian image (`BASE_IMAGE`).
#   - Offline: `scripts/docker-build.sh` makes a local Debian base with debootstrap, builds the
#     release binaries on the host (a bookworm machine, so the same glibc) into target/prebuilt/,
#     then `docker build --target prebuilt --build-arg BASE_IMAGE=auction-base:bookworm .`.
#
# The legacy builder (docker without BuildKit) builds every stage before the target, so the
# stages are in this order: the offline target comes before the Rust stage and never needs it.
ARG BASE_IMAGE=debian:bookworm-slim
ARG RUST_IMAGE=rust:1-bookworm

# What both ways share: curl for the health check (the debootstrap base has it already), the
# user, the health check (deployments/auction-healthcheck, copied in with the binaries).
FROM ${BASE_IMAGE} AS runtime-base
LABEL org.opencontainers.image.title="auction-system" \
      org.opencontainers.image.description="The auction system's services and auctionctl"
RUN command -v curl >/dev/null \
    || (apt-get update \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
        && rm -rf /var/lib/apt/lists/*)
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin auction
USER auction
EXPOSE 8080 8081 8082
HEALTHCHECK --interval=5s --timeout=3s --start-period=60s --retries=3 CMD ["auction-healthcheck"]
CMD ["bidding-service"]

# Offline: the binaries the host built. `target/prebuilt*` matches nothing in a checkout without
# them, which is fine beside the health check script: the legacy builder then still gets through
# this stage on its way to `runtime`.
FROM runtime-base AS prebuilt
COPY deployments/auction-healthcheck target/prebuilt* /usr/local/bin/

# With a registry: compile in the Rust image.
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY loadgen loadgen
COPY web web
# No line tables in the image (most of each binary's size); backtraces keep the function names.
ENV CARGO_PROFILE_RELEASE_DEBUG=false
RUN cargo build --release --locked -p auction-server -p auction-cli --bins \
    && install -D -t /out target/release/bidding-service target/release/auction-service \
        target/release/analytics-service target/release/auctionctl

FROM runtime-base AS runtime
COPY deployments/auction-healthcheck /usr/local/bin/
COPY --from=builder /out/ /usr/local/bin/
