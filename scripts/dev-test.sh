#!/usr/bin/env bash
# Tests scripts/dev.sh's two ways of stopping, with the binaries and the Redis key prefix and
# database of a stack made by scripts/with-stack.sh (run it inside one), on ports of its own:
#   1. Ctrl-C (SIGINT to the whole process group, as a terminal sends it) stops every service and
#      exits 0, saying "dev: stopped" and nothing about a failure;
#   2. a service killed on its own stops the others and exits 1, naming its exit status.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'dev-test: %s\n' "$*" >&2; }
fail() { say "FAILED: $*"; [ -z "${log:-}" ] || { say "dev.sh said:"; cat "$log" >&2; }; exit 1; }

[ -n "${STACK_BIN_DIR:-}" ] && [ -n "${STACK_ENV_FILE:-}" ] ||
    { say "run me inside scripts/with-stack.sh: I need STACK_BIN_DIR and STACK_ENV_FILE"; exit 2; }

# free_port: a port nothing listens on now (the kernel's pick for port 0).
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

dir=$(mktemp -d)
group=""
cleanup() {
    [ -z "$group" ] || kill -KILL -- "-$group" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

# start: runs dev.sh in a process group of its own (as a terminal's foreground job) with the
# stack's settings and fresh ports, and waits until it says the stack is up.
start() {
    log="$dir/dev-$1.log"
    bidding=$(free_port) auction=$(free_port) analytics=$(free_port)
    mapfile -t settings <"$STACK_ENV_FILE"
    env -i PATH="$PATH" HOME="$HOME" "${settings[@]}" BIN_DIR="$STACK_BIN_DIR" \
        BIDDING_PORT="$bidding" AUCTION_PORT="$auction" ANALYTICS_PORT="$analytics" \
        setsid scripts/dev.sh >"$log" 2>&1 &
    dev=$!
    group=$dev
    for _ in $(seq 1 300); do
        grep -q "The stack is up" "$log" && return 0
        kill -0 "$dev" 2>/dev/null || fail "dev.sh exited before the stack was up"
        sleep 0.1
    done
    fail "the stack was not up within 30 s"
}

# finish: waits up to 15 s for dev.sh to exit and sets `status` to its exit status.
finish() {
    for _ in $(seq 1 150); do
        kill -0 "$dev" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$dev" 2>/dev/null && fail "dev.sh did not exit within 15 s"
    status=0
    wait "$dev" || status=$?
    # Nothing of its group may be left running (exited ones not yet reaped do not count).
    local left
    left=$(ps -eo pgid=,stat=,pid=,args= | awk -v g="$group" '$1 == g && $2 !~ /^Z/')
    [ -z "$left" ] || fail "processes of dev.sh outlived it: $left"
    group=""
}

# The pid of the service listening on PORT.
listener() { ss -Htlnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2; }

say "Ctrl-C: a clean stop"
start ctrl-c
kill -INT -- "-$group"
finish
[ "$status" -eq 0 ] || fail "dev.sh exited $status after Ctrl-C, not 0"
grep -q "dev: stopped" "$log" || fail "dev.sh did not say it stopped"
if grep -q "a service stopped" "$log"; then fail "dev.sh reported a failure after Ctrl-C"; fi

say "a service killed: the stack stops with a failure"
start killed
victim=$(listener "$bidding")
[ -n "$victim" ] || fail "nothing listens on the bidding port $bidding"
kill -KILL "$victim"
finish
[ "$status" -eq 1 ] || fail "dev.sh exited $status after a service died, not 1"
grep -q "a service stopped (exit status 137)" "$log" || fail "dev.sh did not name the dead service's exit status"

say "ok: Ctrl-C stops cleanly (exit 0); a dead service stops the stack (exit 1)"
