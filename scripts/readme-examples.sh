#!/usr/bin/env bash
# Proves the README's examples work exactly as printed: runs every shell block that README.md
# marks with <!-- example --> in order, as one script, against a stack of its own on 8080/8081
# (scripts/with-stack.sh starts it from this checkout, unless this already runs inside one).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${WITH_STACK:-}" ] || exec scripts/with-stack.sh scripts/readme-examples.sh "$@"

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
