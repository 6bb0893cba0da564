#!/usr/bin/env bash
# Builds the deployment's images with no container registry: the local Debian base
# (scripts/docker-base.sh, only when missing), the release binaries on the host (cargo's own
# incremental build), then the services' image from those binaries and the image of Redis,
# MariaDB and nginx from Debian's packages. Every step reuses what is already built, so a second
# run with nothing changed takes seconds.
#
# The host must be Debian bookworm (or have its glibc, 2.36, or an older one): the binaries run in
# a bookworm image (checked here), and binutils' objcopy strips them. Where a registry is reachable, `docker build .` alone builds the services'
# image from the official Rust and Debian images instead (see the Dockerfile).
#
# Environment (defaults in brackets): BASE_IMAGE [auction-base:bookworm], AUCTION_IMAGE
# [auction-system:latest], INFRA_IMAGE [auction-infra:bookworm], CARGO_TARGET_DIR [target].
set -euo pipefail

cd "$(dirname "$0")/.."
export BASE_IMAGE=${BASE_IMAGE:-auction-base:bookworm}
AUCTION_IMAGE=${AUCTION_IMAGE:-auction-system:latest}
INFRA_IMAGE=${INFRA_IMAGE:-auction-infra:bookworm}
BINARIES=(bidding-service auction-service analytics-service auctionctl)

say() { printf 'docker-build: %s\n' "$*" >&2; }

scripts/docker-base.sh

say "building the release binaries on the host"
cargo build --release --locked -p auction-server -p auction-cli --bins
release=${CARGO_TARGET_DIR:-target}/release
mkdir -p target/prebuilt
for binary in "${BINARIES[@]}"; do
    # Without the release profile's line tables, which are most of each binary (70 MB -> 10 MB);
    # backtraces keep the function names. Replaced only when changed, so an unchanged binary
    # keeps its docker layer cached.
    if [ "$release/$binary" -nt "target/prebuilt/$binary" ]; then
        objcopy --strip-debug "$release/$binary" "target/prebuilt/$binary.new"
        if cmp -s "target/prebuilt/$binary.new" "target/prebuilt/$binary"; then
            rm "target/prebuilt/$binary.new"
            touch "target/prebuilt/$binary"
        else
            mv "target/prebuilt/$binary.new" "target/prebuilt/$binary"
        fi
    fi
    # A binary built against a newer glibc than bookworm's would only fail once started.
    needs=$(objdump -T "target/prebuilt/$binary" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1)
    if [ "$(printf '%s\n' "$needs" GLIBC_2.36 | sort -V | tail -1)" != GLIBC_2.36 ]; then
        say "error: $binary needs $needs, newer than Debian bookworm's 2.36: build on bookworm, or use the Dockerfile's registry path"
        exit 1
    fi
done

# Quiet builds print the image id only, or the failure; the legacy builder's deprecation notice,
# printed every time, is dropped, since the legacy builder is what this path is for.
build() {
    local output status=0
    output=$(docker build -q "$@" 2>&1) || status=$?
    grep -v -e 'DEPRECATED: The legacy builder' -e 'buildx' -e '^ *$' -e '^sha256:' <<<"$output" >&2 || true
    return "$status"
}

say "building $AUCTION_IMAGE"
build --target prebuilt --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$AUCTION_IMAGE" .
say "building $INFRA_IMAGE"
build --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$INFRA_IMAGE" -f deployments/infra.Dockerfile deployments
# The images these builds replaced, now untagged, would pile up build after build.
for title in auction-system auction-infra; do
    docker image prune -f --filter "label=org.opencontainers.image.title=$title" >/dev/null
done
for image in "$AUCTION_IMAGE" "$INFRA_IMAGE" "$BASE_IMAGE"; do
    say "$(docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$image")"
done
