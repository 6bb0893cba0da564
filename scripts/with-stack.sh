#!/usr/bin/env bash
# Runs a command against the running stack, starting it with scripts/dev.sh first (and stopping
# it afterwards) unless one already answers on 8080 and 8081.
set -euo pipefail
cd "$(dirname "$0")/.."

healthy() { curl -sf "http://localhost:$1/health" >/dev/null 2>&1; }

if ! healthy 8081 || ! healthy 8080; then
    log=$(mktemp)
    scripts/dev.sh >"$log" 2>&1 &
    started=$!
    cleanup() {
        trap - EXIT INT TERM
        kill -TERM "$started" 2>/dev/null || true
        wait "$started" 2>/dev/null || true
        rm -f "$log"
    }
    trap cleanup EXIT INT TERM
    for _ in $(seq 1 600); do
        if healthy 8081 && healthy 8080; then break; fi
        if ! kill -0 "$started" 2>/dev/null; then cat "$log"; echo "with-stack: the stack did not start" >&2; exit 1; fi
        sleep 0.5
    done
    healthy 8081 && healthy 8080 || { cat "$log"; echo "with-stack: the stack did not answer" >&2; exit 1; }
fi
"$@"
