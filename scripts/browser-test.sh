#!/usr/bin/env bash
# The web UI's browser test: Debian's chromium driven by playwright-core (both installed here if
# missing), against a stack of its own (scripts/with-stack.sh starts it from this checkout, unless
# this already runs inside one). The screenshot lands in target/browser-test/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
if [ ! -x /usr/bin/chromium ]; then
    echo "browser-test: installing chromium" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v npm >/dev/null; then
    echo "browser-test: installing nodejs and npm" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
(cd web/tests && npm ci --silent --no-audit --no-fund)
[ -n "${WITH_STACK:-}" ] || exec scripts/with-stack.sh scripts/browser-test.sh "$@"
BROWSER_TEST_OUT="$PWD/target/browser-test" node --test web/tests/
