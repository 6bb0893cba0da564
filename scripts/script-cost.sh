#!/usr/bin/env bash
# `scripts/script-cost.sh [N]`: what the bid script costs Redis on each of its paths, in
# instructions, which unlike time do not vary from run to run on a shared machine (to within 0.5%).
#
# For each kind of bid, a redis-server of its own (port SCRIPT_COST_PORT, default 16391, no
# persistence) runs under valgrind's callgrind; N bids of that kind (default 2000) on one auction
# with the one-cent table go in through `redis-cli --pipe`, and the server's instructions over them
# (reading the commands, the script, the commands it calls, the replies) are divided by N:
#   plain   plain bids, each leading at its own amount
#   beaten  plain bids, each beaten at once by a standing max
#   max     bids with a max, each taking the lead at its own amount
# docs/capacity.md ("The bid script's paths, counted") has the figures. Needs valgrind and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-2000}
port=${SCRIPT_COST_PORT:-16391}
say() { printf 'script-cost: %s\n' "$*" >&2; }
for tool in valgrind callgrind_control redis-server redis-cli python3; do
    command -v "$tool" >/dev/null || { say "error: $tool is missing (apt-get install valgrind redis-server python3)"; exit 1; }
done
case "$n" in '' | *[!0-9]* | 0) say "error: N must be a whole number of bids above 0 (got '$n')"; exit 2 ;; esac
if redis-cli -p "$port" ping >/dev/null 2>&1; then
    say "error: something already answers on port $port (set SCRIPT_COST_PORT)"
    exit 1
fi

work=$(mktemp -d)
server=
cleanup() {
    [ -z "$server" ] || { redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT

# bids KIND SHA: the commands of N bids of that kind, in Redis's protocol.
bids() {
    python3 - "$1" "$2" "$n" <<'PY'
import sys
kind, sha, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = sys.stdout.buffer
def cmd(*args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    out.write(b"".join(parts))
auction = "cost"
keys = [f"auction:{{{auction}}}", f"auction:{{{auction}}}:recent", f"auction:{{{auction}}}:outcomes", f"auction:{{{auction}}}:log"]
cmd("HSET", keys[0], "state", "active", "start_ms", 0, "end_ms", 99999999999999, "starting_bid", 100, "current_bid", "",
    "bidder", "", "seq", 0, "bid_count", 0, "ext_window_s", 0, "ext_s", 0, "rules_v", 1)
def bid(bidder, i, amount, max_amount=""):
    # ARGV as crates/server/src/store/bids.rs passes them; a one-cent table, bid ids the client chose.
    cmd("EVALSHA", sha, 4, *keys, auction, bidder, f"bid-{i}", amount, "0:1", f"auction:{{{auction}}}:live", 50,
        "PUBLISH", 1, 1, 10**11, 0, max_amount)
if kind == "plain":
    for i in range(n):
        bid(f"b{i % 2}", i, 100 + i)
elif kind == "beaten":
    bid("leader", 0, 100, 10**10)
    for i in range(1, n):
        bid(f"b{i % 2}", i, 99 + 2 * i)
else:
    for i in range(n):
        bid(f"b{i % 2}", i, 100 + 6 * i, 105 + 6 * i)
PY
}

for kind in plain beaten max; do
    rm -f "$work"/callgrind.*
    valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.%p" \
        redis-server --port "$port" --save '' --appendonly no >"$work/valgrind.log" 2>&1 &
    server=$!
    for _ in $(seq 1 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
    sha=$(redis-cli -p "$port" SCRIPT LOAD "$(cat crates/server/src/store/bid.lua)")
    bids "$kind" "$sha" >"$work/bids"
    callgrind_control -z "$server" >/dev/null 2>&1
    redis-cli -p "$port" --pipe <"$work/bids" >"$work/pipe.out" 2>&1
    callgrind_control -d "$server" >/dev/null 2>&1
    grep -q "errors: 0" "$work/pipe.out" || { say "error: Redis refused some of the $kind bids: $(tail -n 3 "$work/pipe.out")"; exit 1; }
    bad=$(redis-cli -p "$port" HVALS 'auction:{cost}:outcomes' | grep -c '"rejected"' || true)
    [ "$bad" = 0 ] || { say "error: the script rejected $bad of the $kind bids, so they did not take the path measured"; exit 1; }
    dump=$(ls -t "$work"/callgrind.*.[0-9]* | head -n 1)
    instructions=$(awk '/^summary:/ {print $2; exit}' "$dump")
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    wait "$server" 2>/dev/null || true
    server=
    printf '%-7s %9d instructions per bid (%d bids)\n' "$kind" $((instructions / n)) "$n"
done
