#!/usr/bin/env bash
# Brings up the whole stack locally, no Docker needed: Redis and MariaDB (installed and started
# if missing), then the bidding (8080), auction (8081) and analytics (8082) services in the
# foreground, their logs interleaved. Ctrl-C stops the services (Redis and MariaDB keep running).
#
# Environment: PROFILE=release builds optimised binaries; BIN_DIR=<dir> runs the service binaries
# already in <dir> instead of building; BIDDING_PORT, AUCTION_PORT, ANALYTICS_PORT move the
# services; every service setting of config.yaml or the environment (see README) applies to all
# three services.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/dev-services.sh

profile=${PROFILE:-debug}
if [ -n "${BIN_DIR:-}" ]; then
    bin=$BIN_DIR
elif [ "$profile" = release ]; then
    cargo build --release --bins
    bin=${CARGO_TARGET_DIR:-target}/$profile
else
    cargo build --bins
    bin=${CARGO_TARGET_DIR:-target}/$profile
fi

pids=()
stop() {
    trap - INT TERM EXIT
    [ ${#pids[@]} -eq 0 ] || kill -TERM "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
# Ctrl-C (or SIGTERM) is the normal way to stop: a clean stop, exit 0.
stopped() {
    stop
    echo "dev: stopped" >&2
    exit 0
}
trap stopped INT TERM
trap stop EXIT

# start NAME PORT: runs one service with its log lines prefixed by its name.
start() {
    local name=$1 port=$2
    SERVER_PORT=$port "$bin/$name" > >(sed -u "s/^/[$name] /") 2>&1 &
    pids+=("$!")
}

# wait_healthy PORT: waits for a service's /health. A service that is still starting (it answers
# 503 "starting" while it reaches Redis and MySQL and applies migrations, which on a large table
# take a while) is waited for up to 10 minutes, saying so every 10 s; one that has exited is not.
wait_healthy() {
    local waited=0
    while [ "$waited" -lt 3000 ]; do
        curl -sf "http://localhost:$1/health" >/dev/null 2>&1 && return 0
        kill -0 "${pids[@]}" 2>/dev/null || break
        waited=$((waited + 1))
        if [ $((waited % 50)) -eq 0 ] && [ "$waited" -ge 150 ]; then
            echo "dev: still waiting for the service on port $1: $(curl -s "http://localhost:$1/health" 2>&1 | head -c 300)" >&2
        fi
        sleep 0.2
    done
    echo "dev: the service on port $1 did not become healthy" >&2
    exit 1
}

# The auction service first: it applies the database migrations.
start auction-service "${AUCTION_PORT:-8081}"
wait_healthy "${AUCTION_PORT:-8081}"
start bidding-service "${BIDDING_PORT:-8080}"
start analytics-service "${ANALYTICS_PORT:-8082}"
wait_healthy "${BIDDING_PORT:-8080}"
wait_healthy "${ANALYTICS_PORT:-8082}"

cat <<MSG
The stack is up:
  bidding service    ws://localhost:${BIDDING_PORT:-8080}/ws/auction/{id}?user_id=...
  auction service    http://localhost:${AUCTION_PORT:-8081}/api/v1/auctions
  analytics service  http://localhost:${ANALYTICS_PORT:-8082}/health
Ctrl-C stops it.
MSG
# If any service stops on its own, stop them all: a half-running stack only confuses. The
# terminal's Ctrl-C reaches the services too, and one may exit before this shell runs its trap:
# a service exits 0 only when told to stop, so that is a clean stop, not a failure.
status=0
wait -n "${pids[@]}" || status=$?
[ "$status" -ne 0 ] || stopped
echo "dev: a service stopped (exit status $status); stopping the stack" >&2
exit 1
