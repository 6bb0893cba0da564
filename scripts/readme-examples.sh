#!/usr/bin/env bash
# Proves the README's examples work exactly as printed: starts the stack with scripts/dev.sh
# (unless one already answers on 8080/8081), then runs every shell block that README.md marks
# with <!-- example --> in order, as one script.
set -euo pipefail
cd "$(dirname "$0")/.."

healthy() { curl -sf "http://localhost:$1/health" >/dev/null 2>&1; }

started=""
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
        if ! kill -0 "$started" 2>/dev/null; then cat "$log"; echo "readme-examples: the stack did not start" >&2; exit 1; fi
        sleep 0.5
    done
    healthy 8081 && healthy 8080 || { cat "$log"; echo "readme-examples: the stack did not answer" >&2; exit 1; }
fi

examples=$(awk '
    /<!-- example -->/ { armed = 1; next }
    armed && /^```/ && !inside { inside = 1; next }
    inside && /^```/ { inside = 0; armed = 0; print ""; next }
    inside { print }
' README.md)
[ -n "$examples" ] || { echo "readme-examples: no examples found in README.md" >&2; exit 1; }
echo "readme-examples: running the README's examples"
bash -euo pipefail -c "$examples"
echo "readme-examples: 1 passed, 0 failed"
