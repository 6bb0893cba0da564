#!/usr/bin/env bash
# Proves the README's examples work exactly as printed: runs every shell block that README.md
# marks with <!-- example --> in order, as one script, against a stack of its own on 8080/8081
# (scripts/with-stack.sh starts it from this checkout, with its own key prefix and database, unless
# this already runs inside one), so that nothing a user's own stack left behind can change the
# outcome. A failing example is named: its README line, the command, its exit status, and for a
# `grep` check what it expected and what it got. README_FILE reads another file (to try a failure).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${WITH_STACK:-}" ] || exec scripts/with-stack.sh scripts/readme-examples.sh "$@"
readme=${README_FILE:-README.md}

# The example lines, and beside them (same filter) the README line each came from.
extract() {
    awk -v what="$1" '
        /<!-- example -->/ { armed = 1; next }
        armed && /^```/ && !inside { inside = 1; next }
        inside && /^```/ { inside = 0; armed = 0; print (what == "lines" ? 0 : ""); next }
        inside { print (what == "lines" ? NR : $0) }
    ' "$readme"
}
examples=$(extract text)
[ -n "$examples" ] || { echo "readme-examples: no examples found in $readme" >&2; exit 1; }
# Read by the header below: "0 " pads index 0, since LINENO counts from 1.
README_LINES="0 $(extract lines | tr '\n' ' ')"
export README_LINES README_NAME=$readme

# Runs before the examples, in their shell. Its line count is subtracted from LINENO.
header=$(cat <<'HEADER'
read -ra readme_lines <<<"$README_LINES"
failed() { printf 'readme-examples: FAILED at %s line %s (exit %s): %s\n' "$README_NAME" "${readme_lines[$(($2 - HEADER_LINES))]:-?}" "$1" "$3" >&2; }
set -E; trap 'failed $? $LINENO "$BASH_COMMAND"' ERR
grep() { local input status; input=$(cat); printf '%s\n' "$input" | command grep "$@" && return 0; status=$?; printf 'readme-examples: expected %s in: %s\n' "${*: -1}" "${input:-(nothing)}" >&2; return "$status"; }
HEADER
)
header_lines=$(($(printf '%s\n' "$header" | wc -l) + 1))
echo "readme-examples: running the examples of $readme"
if ! HEADER_LINES=$header_lines bash -euo pipefail -c "HEADER_LINES=$header_lines
$header
$examples"; then
    echo "readme-examples: 0 passed, 1 failed" >&2
    exit 1
fi
echo "readme-examples: 1 passed, 0 failed"
