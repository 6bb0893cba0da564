#!/usr/bin/env bash
# The Redis memory soak: shows that finished auctions leave Redis. On a redis-server of its own
# (port SOAK_REDIS_PORT, default 7301, in a temporary directory, no persistence, stopped
# afterwards) it runs a stack of its own (scripts/with-stack.sh, services on 18080-18082 unless
# BIDDING_PORT, AUCTION_PORT, ANALYTICS_PORT say otherwise) with a short ENDED_RETENTION, then
# SOAK_ROUNDS times (default 2): creates SOAK_AUCTIONS short auctions (default 50), bids on them
# with auction-loadgen (SOAK_RATE bids/s, default 1500, for SOAK_SECONDS, default 10), waits for
# them to end, be copied to MySQL and expire, and prints Redis `used_memory` at the baseline,
# after the bids and after the retention. It fails if memory after a round is not back within
# SOAK_SLACK bytes (default 1 MiB) of the baseline. Takes about half a minute per round, after
# the build.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'soak: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [ "${WITH_STACK:-}" != 1 ]; then
    port=${SOAK_REDIS_PORT:-7301}
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && die "port $port is in use; set SOAK_REDIS_PORT"
    dir=$(mktemp -d /tmp/soak-redis.XXXXXX)
    redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
        --maxmemory-policy noeviction --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
    stop_redis() {
        redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
        rm -rf "$dir"
    }
    trap stop_redis EXIT
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    cargo build --locked -q -p auction-loadgen
    export SOAK_REDIS_PORT=$port
    TEST_REDIS_ADDRESS=127.0.0.1:$port BIDDING_PORT=${BIDDING_PORT:-18080} AUCTION_PORT=${AUCTION_PORT:-18081} \
        ANALYTICS_PORT=${ANALYTICS_PORT:-18082} STACK_SETTINGS="ENDED_RETENTION=5s ANALYTICS_SWEEP=500ms" \
        scripts/with-stack.sh "$0"
    exit
fi

# From here on, inside the stack.
port=$SOAK_REDIS_PORT
rounds=${SOAK_ROUNDS:-2} auctions=${SOAK_AUCTIONS:-50} rate=${SOAK_RATE:-1500} seconds=${SOAK_SECONDS:-10}
slack=${SOAK_SLACK:-1048576}
prefix=$(sed -n 's/^REDIS_KEY_PREFIX=//p' "$STACK_ENV_FILE")
loadgen="$STACK_BIN_DIR/auction-loadgen"

used_memory() { redis-cli -p "$port" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }
auction_keys() { redis-cli -p "$port" --scan --pattern "${prefix}auction:*" | wc -l; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }

baseline=$(used_memory)
say "baseline used_memory $baseline ($(mib "$baseline"))"
for round in $(seq 1 "$rounds"); do
    ends=$(date -u -d "+$((seconds + 3)) seconds" +%FT%T.%3NZ)
    starts=$(date -u -d "-1 second" +%FT%T.%3NZ)
    ids=()
    for n in $(seq 1 "$auctions"); do
        body="{\"title\":\"soak $round-$n\",\"start_time\":\"$starts\",\"end_time\":\"$ends\",\"starting_bid\":\"1.00\",\"extension_window_s\":0}"
        ids+=("$(curl -sf -X POST -H 'content-type: application/json' -d "$body" "$AUCTION_API_URL/api/v1/auctions" |
            sed -n 's/.*"auction_id":"\([^"]*\)".*/\1/p')")
    done
    report=$("$loadgen" --api-url "$AUCTION_API_URL" --ws-url "$AUCTION_WS_URL" --auction-id "$(IFS=,; echo "${ids[*]}")" \
        --bidders $((auctions * 2)) --rate "$rate" --duration "${seconds}s" --warmup 0 --output json)
    attempted=$(printf '%s' "$report" | sed -n 's/^ *"attempted": *\([0-9]*\).*/\1/p' | head -n1)
    accepted=$(printf '%s' "$report" | sed -n 's/^ *"accepted": *\([0-9]*\).*/\1/p' | head -n1)
    loaded=$(used_memory)
    say "round $round: $attempted bids sent ($accepted accepted) on $auctions auctions; used_memory $loaded ($(mib "$loaded")), $(auction_keys) auction keys"
    waited=0
    until [ "$(auction_keys)" -eq 0 ] && [ "$(redis-cli -p "$port" zcard "${prefix}auctions")" -eq 0 ]; do
        [ "$waited" -lt 600 ] || die "round $round: auction keys still there after 60 s: $(auction_keys)"
        sleep 0.1
        waited=$((waited + 1))
    done
    after=$(used_memory)
    say "round $round: all ended, copied and expired; used_memory $after ($(mib "$after")), $((after - baseline)) bytes over the baseline"
    [ $((after - baseline)) -le "$slack" ] || die "round $round: used_memory did not return near the baseline"
done
rows=$(curl -sf "$AUCTION_API_URL/api/v1/auctions?status=ended&limit=1000" | grep -o '"auction_id"' | wc -l)
say "the list still shows the $rows ended auctions, from MySQL"
