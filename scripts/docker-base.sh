#!/usr/bin/env bash
# Makes sure Docker answers and that the local base image exists, for machines with no container
# registry: the base is Debian bookworm built with debootstrap from Debian's own package mirror
# and loaded with `docker import`. Nothing is done when the image is already there, so only the
# first run pays for it (a minute or two).
#
# The base is the smallest Debian that the images need: minbase plus ca-certificates and curl (the
# containers' health checks use curl). Its apt sources also list bookworm-updates and the security
# archive, so images built on it install current packages.
#
# Installs Debian's docker.io, docker-compose and debootstrap when they are missing, and starts
# dockerd (in the background, logging to /var/log/dockerd.log) when `docker info` fails,
# and waits up to 60 s for it to answer. Needs root, or sudo, for dockerd and debootstrap.
#
# Environment (defaults in brackets): BASE_IMAGE [auction-base:bookworm], DEBIAN_MIRROR
# [http://deb.debian.org/debian], DEBIAN_SECURITY_MIRROR [http://deb.debian.org/debian-security].
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-auction-base:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
SUITE=bookworm

say() { printf 'docker-base: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

# Docker, compose and debootstrap from Debian's packages, when missing (a fresh machine).
ensure_packages() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    [ ${#missing[@]} -eq 0 ] && return
    say "installing ${missing[*]}"
    $SUDO apt-get update -qq >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_dockerd() {
    if docker info >/dev/null 2>&1; then return; fi
    command -v dockerd >/dev/null || die "dockerd not found: install Debian's docker.io package"
    say "starting dockerd (log: /var/log/dockerd.log)"
    $SUDO sh -c 'nohup dockerd >>/var/log/dockerd.log 2>&1 &'
    for _ in $(seq 1 120); do
        if docker info >/dev/null 2>&1; then return; fi
        sleep 0.5
    done
    die "dockerd did not answer within 60 s (see /var/log/dockerd.log)"
}

make_base() {
    command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
    local rootfs
    rootfs=$(mktemp -d /tmp/auction-base.XXXXXX)
    # shellcheck disable=SC2064 # the path is fixed now, on purpose
    trap "$SUDO rm -rf '$rootfs'" EXIT
    say "building $BASE_IMAGE with debootstrap ($SUITE, minbase, from $DEBIAN_MIRROR)"
    $SUDO debootstrap --variant=minbase --include=ca-certificates,curl \
        "$SUITE" "$rootfs" "$DEBIAN_MIRROR" >/tmp/auction-base-debootstrap.log 2>&1 \
        || die "debootstrap failed (see /tmp/auction-base-debootstrap.log)"
    $SUDO tee "$rootfs/etc/apt/sources.list" >/dev/null <<EOF
deb $DEBIAN_MIRROR $SUITE main
deb $DEBIAN_MIRROR $SUITE-updates main
deb $DEBIAN_SECURITY_MIRROR $SUITE-security main
EOF
    # Packages installed in an image must not try to start their daemons (there is no init), and
    # the image should not carry the package cache or lists.
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$rootfs/usr/sbin/policy-rc.d" >/dev/null
    $SUDO chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    # Like Debian's slim images: no manuals, documentation or translations, now or in any
    # package installed later (the copyright files stay).
    $SUDO tee "$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" >/dev/null <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    $SUDO find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    $SUDO rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    $SUDO find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
    $SUDO rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    $SUDO tar -C "$rootfs" --numeric-owner -c . \
        | docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$BASE_IMAGE" >/dev/null
    say "made $BASE_IMAGE"
}

ensure_packages
ensure_dockerd
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    say "$BASE_IMAGE is present"
else
    make_base
fi
