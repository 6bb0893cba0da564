#!/usr/bin/env bash
# Runs every check and every test, on a fresh Debian/Ubuntu machine with only Rust installed:
# brings up Redis and MariaDB first (installing them if missing), then format, lints, tests (again
# on a loopback Redis Cluster for the bidding, lifecycle and durability ones), the REST API fuzzer,
# the whole stack running the README's own examples, the web UI's browser test and dev.sh's stop
# paths, and the compose deployment's failure test (installing Docker and debootstrap if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/dev-services.sh
# The terminal UI's end-to-end test drives the real binary in tmux.
if ! command -v tmux >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The bidding, lifecycle and durability tests again, on a Redis Cluster of three primaries and
# three replicas (loopback). Tests that put a proxy in front of Redis to cut it off are left out:
# a cluster's clients follow redirections to the nodes' own addresses, past any proxy.
TEST_REDIS_CLUSTER_NODES="$(scripts/redis-cluster.sh)" cargo test -p auction-server --test api --locked -- \
    bidding:: lifecycle:: durability:: --skip a_leader_that_cannot_renew_steps_down_before_another_takes_over
scripts/api-fuzz.sh
scripts/with-stack.sh bash -c 'scripts/readme-examples.sh && scripts/browser-test.sh && scripts/dev-test.sh'
# The compose deployment (images built offline, a Redis Cluster, nginx) under load while a Redis
# primary, a bidding node and the leader are killed and an analytics instance is cut off.
scripts/deploy-test.sh
