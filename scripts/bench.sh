#!/usr/bin/env bash
# The benchmark: the stack in release mode on its own ports and key prefix, its numbers beside the
# Redis ceiling measured in the same run.
#
#   1. ceiling      redis-benchmark, 50 clients, EVALSHA of the project's own bid.lua on fresh
#                   auctions (mostly the accepting path: state, recent list, stream, publish)
#   2. max rate     auction-loadgen closed loop over many auctions: the highest sustained rate
#   3. half rate    auction-loadgen open loop at half that rate: ack p50/p99
#   4. fan-out      one auction, 10,000 watchers, 2 bids per second: fan-out p99 of each bid
#   5. idle memory  bidding-service RSS before and after 10,000 idle WebSockets
#   8. proxy bids   2 and 3 again with 30% of the bidders bidding by max (`--proxy-share 0.3`),
#                   beside the plain figures
#   7. list load    with BENCH_LIST=1: after 5,000 cancelled auctions were made, 3 again alone,
#                   then beside clients listing active auctions at 50/s (`--list-rate`)
#   6. cluster      with BENCH_REDIS=cluster: runs 2 and 3 again on a loopback Redis Cluster of
#                   three primaries and three replicas (append-only on, like the single Redis),
#                   then 3 with BID_DURABILITY=replicated; each as a ratio to the single-Redis
#                   figures of the same run. All six nodes share this machine's cores with the
#                   services and the load generator, so this measures the cost of the cluster
#                   machinery (routing, one more hop for nothing), not the gain of more hosts.
#
# Redis runs as in production, with its append-only file (scripts/dev-services.sh turns it on);
# the ceiling is measured against the same Redis.
#
# Environment: BENCH_SECONDS (default 10) per measured run; BENCH_WATCHERS (default 10000);
# BENCH_REDIS=cluster adds part 6; BENCH_LIST=1 adds part 7; BENCH_PROXY_SHARE (default 0) is the
# fraction of bidders in the bidding runs (2, 3, 6, 7) that bid by max (`--proxy-share`), so that
# the proxy path of the bid script (prices a max places, bids it beats at once) is measured too.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${BENCH_SECONDS:-10}
watchers=${BENCH_WATCHERS:-10000}
proxy_share=${BENCH_PROXY_SHARE:-0}
export BIDDING_PORT=18080 AUCTION_PORT=18081 ANALYTICS_PORT=18082
export REDIS_KEY_PREFIX="bench$$:" LOG_LEVEL=warn
# The load generator bids far faster than any person: lift the per-bidder rate limits.
export WS_BID_RATE=1000000 WS_USER_BID_RATE=1000000
api=http://localhost:$AUCTION_PORT
ws=ws://localhost:$BIDDING_PORT

say() { printf 'bench: %s\n' "$*" >&2; }

# Sockets: 10,000 watchers on each side of loopback.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
say "open-file limit $(ulimit -n)"

scripts/dev-services.sh
command -v redis-benchmark >/dev/null || { say "redis-benchmark missing"; exit 1; }
command -v python3 >/dev/null || { say "installing python3 for the report"; $( [ "$(id -u)" -eq 0 ] || echo sudo ) apt-get install -y -qq python3-minimal; }
cargo build --release --bins --quiet

# --- 1. the ceiling --------------------------------------------------------------------------
sha=$(redis-cli SCRIPT LOAD "$(cat crates/server/src/store/bid.lua)")
auctions=200000
say "creating $auctions ceiling auctions"
redis-cli EVAL "
for i = 0, tonumber(ARGV[2]) - 1 do
  redis.call('HSET', ARGV[1] .. string.format('%012d', i) .. '}', 'state', 'open', 'start_ms', '0',
    'end_ms', '99999999999999', 'starting_bid', '100', 'current_bid', '', 'bidder', '', 'seq', '0',
    'bid_count', '0', 'ext_window_s', '0', 'ext_s', '30')
end
return 1" 0 "${REDIS_KEY_PREFIX}ceiling:{" "$auctions" >/dev/null
key="${REDIS_KEY_PREFIX}ceiling:{__rand_int__}"
ceiling=$(redis-benchmark -q -c 50 -n 300000 -r "$auctions" \
    EVALSHA "$sha" 4 "$key" "$key:recent" "$key:outcomes" "$key:log" \
    __rand_int__ u__rand_int__ b__rand_int__ 100 "0:5,100:25,500:50,2500:100,10000:250" "${REDIS_KEY_PREFIX}ceiling:live" 10 PUBLISH 1 0 100000000000 0 \
    | tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -n 1 | cut -d' ' -f1)
say "ceiling: $ceiling EVALSHA/s"
redis-cli --scan --pattern "${REDIS_KEY_PREFIX}ceiling:*" | xargs -r -n 1000 redis-cli DEL >/dev/null

# --- the stack --------------------------------------------------------------------------------
# start_stack LOG: the release stack in the background (its pid in $stack), waited for until healthy.
start_stack() {
    PROFILE=release scripts/dev.sh >"$1" 2>&1 &
    stack=$!
    # As long as dev.sh waits (migrations on a large table take a while), up to 10 minutes.
    for _ in $(seq 1 1200); do
        curl -sf "$api/health" >/dev/null 2>&1 && curl -sf "http://localhost:$BIDDING_PORT/health" >/dev/null 2>&1 && return 0
        kill -0 "$stack" 2>/dev/null || { say "the stack did not start: the end of $1:"; tail -n 20 "$1" >&2; exit 1; }
        sleep 0.5
    done
    say "the stack was not healthy within 10 minutes"; exit 1
}
stop_stack() { kill -TERM "$stack" 2>/dev/null || true; wait "$stack" 2>/dev/null || true; }
cleanup() {
    stop_stack
    redis-cli --scan --pattern "${REDIS_KEY_PREFIX}*" | xargs -r -n 1000 redis-cli DEL >/dev/null || true
}
trap cleanup EXIT
start_stack /tmp/bench-stack.log
loadgen=target/release/auction-loadgen
out=target/bench
mkdir -p "$out"
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# --- 5. idle memory, first: later runs leave freed memory in the allocator ----------------------
pid=$(pgrep -f "target/release/bidding-service" | head -n 1)
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
before=$(rss)
say "idle: $watchers connections held for 8s"
$loadgen --api-url "$api" --ws-url "$ws" --rate 0.1 --bidders 2 --watchers "$watchers" \
    --warmup 0s --duration 8s --output json >/dev/null &
idle=$!
for _ in $(seq 1 120); do
    open=$(ss -Htn state established "( sport = :$BIDDING_PORT )" | wc -l)
    [ "$open" -ge "$watchers" ] && break
    sleep 0.25
done
sleep 1
after=$(rss)
wait "$idle"
[ "$open" -gt 0 ] || { say "no idle connection was open when memory was measured"; exit 1; }
per_conn=$(( (after - before) * 1024 / open ))

# Redis persists in the background: snapshots and append-only rewrites each fork and take a core
# for a while, on a machine that has two. Before each measured run, wait for any in progress, then
# compact the append-only file and snapshot, so that the writes of one phase do not schedule that
# work into the next, and let the analytics service drain what the last phase left behind. Runs
# still pay for the append-only file itself, and for any save their own writes set off (counted
# in the report as "redis forks").
persisting() {
    local info
    info=$(redis-cli INFO persistence | tr -d '\r')
    grep -E '^(rdb_bgsave_in_progress|aof_rewrite_in_progress|aof_rewrite_scheduled):1' <<<"$info" >/dev/null
}
wait_persisted() { for _ in $(seq 1 600); do persisting || return 0; sleep 0.1; done; }
forks() { redis-cli INFO stats | tr -d '\r' | awk -F: '/^total_forks:/ {n = $2} END {print n + 0}'; }
# Events of this run's auction logs not yet written and acknowledged by analytics (lag + pending).
unwritten() {
    redis-cli EVAL "
local total, cursor = 0, '0'
repeat
  local reply = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = reply[1]
  for _, key in ipairs(reply[2]) do
    if redis.call('TYPE', key)['ok'] == 'stream' then
      local groups = redis.call('XINFO', 'GROUPS', key)
      if #groups == 0 then total = total + redis.call('XLEN', key) end
      for _, g in ipairs(groups) do
        local info = {}
        for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
        total = total + info['pending'] + (tonumber(info['lag']) or 0)
      end
    end
  end
until cursor == '0'
return total" 0 "${REDIS_KEY_PREFIX}auction:*:log" 2>/dev/null || echo 0
}
settle() {
    wait_persisted
    if [ "$(redis-cli CONFIG GET appendonly | tail -n 1)" = yes ]; then
        redis-cli BGREWRITEAOF >/dev/null
        wait_persisted
    fi
    redis-cli BGSAVE >/dev/null
    wait_persisted
    for _ in $(seq 1 600); do
        [ "$(unwritten)" = 0 ] && break
        sleep 0.1
    done
}

# --- 2. max sustained rate --------------------------------------------------------------------
settle
say "closed loop, 200 bidders over 100 auctions, ${seconds}s"
# Where the CPU goes: every process here shares the machine's cores.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
redis_pid=$(pgrep -x redis-server | head -n 1)
r0=$(cpu_ticks "$redis_pid"); b0=$(cpu_ticks "$pid"); t0=$(busy_ticks); f0=$(forks)
max=$($loadgen --api-url "$api" --ws-url "$ws" --concurrency 200 --auctions 100 --proxy-share "$proxy_share" \
    --warmup 2s --duration "${seconds}s" --output json | tee "$out/max.json")
r1=$(cpu_ticks "$redis_pid"); b1=$(cpu_ticks "$pid"); t1=$(busy_ticks); max_forks=$(( $(forks) - f0 ))
cpu_split="redis $(( r1 - r0 )), bidding-service $(( b1 - b0 )), everything else (mostly the load generator) $(( (t1 - t0) - (r1 - r0) - (b1 - b0) )) of $(( t1 - t0 )) busy ticks; redis forks $max_forks"
max_accepted=$(echo "$max" | json "round(d['accepted_rate'])")
max_attempted=$(echo "$max" | json "round(d['achieved_rate'])")

# --- 3. half rate ------------------------------------------------------------------------------
half=$(( max_attempted / 2 ))
settle
say "open loop at $half bids/s, ${seconds}s"
f0=$(forks)
halfrun=$($loadgen --api-url "$api" --ws-url "$ws" --rate "$half" --bidders 200 --auctions 100 --proxy-share "$proxy_share" \
    --warmup 2s --duration "${seconds}s" --output json | tee "$out/half.json")
half_forks=$(( $(forks) - f0 ))

# --- 8. proxy bids ------------------------------------------------------------------------------
# 2 and 3 again with 30% of the bidders bidding by max (the half rate is the plain run's), so the
# proxy path of the bid script is measured beside the plain one.
settle
say "proxy: closed loop, 30% of 200 bidders by max, ${seconds}s"
proxy_max=$($loadgen --api-url "$api" --ws-url "$ws" --concurrency 200 --auctions 100 --proxy-share 0.3 \
    --warmup 2s --duration "${seconds}s" --output json | tee "$out/proxy-max.json")
settle
say "proxy: open loop at $half bids/s, 30% by max, ${seconds}s"
proxy_half=$($loadgen --api-url "$api" --ws-url "$ws" --rate "$half" --bidders 200 --auctions 100 --proxy-share 0.3 \
    --warmup 2s --duration "${seconds}s" --output json | tee "$out/proxy-half.json")

# --- 7. list load -------------------------------------------------------------------------------
listrun='null'
if [ "${BENCH_LIST:-0}" = 1 ]; then
    say "list load: making 5000 cancelled auctions"
    now=$(date +%s)
    body="{\"title\":\"list bench\",\"starting_bid\":\"1.00\",\"start_time\":\"$(date -u -d @"$now" +%FT%TZ)\",\"end_time\":\"$(date -u -d @$((now + 3600)) +%FT%TZ)\"}"
    seq 1 5000 | xargs -P 8 -I{} sh -c "id=\$(curl -sf -X POST -H 'content-type: application/json' -d '$body' $api/api/v1/auctions | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"auction_id\"])') && curl -sf -o /dev/null -X POST $api/api/v1/auctions/\$id/cancel"
    settle
    say "open loop at $half bids/s with the 5000 cancelled auctions, no lists, ${seconds}s"
    listalone=$($loadgen --api-url "$api" --ws-url "$ws" --rate "$half" --bidders 200 --auctions 100 --proxy-share "$proxy_share" \
        --warmup 2s --duration "${seconds}s" --output json | tee "$out/half-list-alone.json")
    settle
    say "open loop at $half bids/s beside 50 lists/s of active auctions, ${seconds}s"
    listrun=$($loadgen --api-url "$api" --ws-url "$ws" --rate "$half" --bidders 200 --auctions 100 --proxy-share "$proxy_share" \
        --list-rate 50 --list-query 'status=active&limit=100' \
        --warmup 2s --duration "${seconds}s" --output json | tee "$out/half-list.json")
fi

# --- 4. fan-out --------------------------------------------------------------------------------
settle
say "fan-out: one auction, $watchers watchers, 2 bids/s"
f0=$(forks)
fanout=$($loadgen --api-url "$api" --ws-url "$ws" --rate 2 --bidders 2 --watchers "$watchers" \
    --warmup 1s --duration "${seconds}s" --output json | tee "$out/fanout.json")
fan_forks=$(( $(forks) - f0 ))

# --- 6. Redis Cluster -----------------------------------------------------------------------------
cluster_max='null'; cluster_half='null'; replicated_half='null'
if [ "${BENCH_REDIS:-single}" = cluster ]; then
    cleanup
    trap - EXIT
    export REDIS_CLUSTER_BASE_PORT=7201 REDIS_CLUSTER_DIR=target/bench-cluster REDIS_CLUSTER_APPENDONLY=yes
    REDIS_CLUSTER_NODES=$(scripts/redis-cluster.sh)
    export REDIS_CLUSTER_NODES
    trap 'stop_stack; scripts/redis-cluster.sh stop' EXIT
    start_stack /tmp/bench-cluster-stack.log
    say "cluster: closed loop, 200 bidders over 100 auctions, ${seconds}s"
    cluster_max=$($loadgen --api-url "$api" --ws-url "$ws" --concurrency 200 --auctions 100 --proxy-share "$proxy_share" \
        --warmup 2s --duration "${seconds}s" --output json | tee "$out/cluster-max.json")
    say "cluster: open loop at $half bids/s (the single-Redis half rate), ${seconds}s"
    cluster_half=$($loadgen --api-url "$api" --ws-url "$ws" --rate "$half" --bidders 200 --auctions 100 --proxy-share "$proxy_share" \
        --warmup 2s --duration "${seconds}s" --output json | tee "$out/cluster-half.json")
    stop_stack
    BID_DURABILITY=replicated start_stack /tmp/bench-cluster-stack.log
    say "cluster, BID_DURABILITY=replicated: open loop at $half bids/s, ${seconds}s"
    replicated_half=$($loadgen --api-url "$api" --ws-url "$ws" --rate "$half" --bidders 200 --auctions 100 --proxy-share "$proxy_share" \
        --warmup 2s --duration "${seconds}s" --output json | tee "$out/cluster-replicated-half.json")
fi

say "raw reports in $out/"
python3 - "$ceiling" "$max" "$halfrun" "$fanout" "$before" "$after" "$open" "$per_conn" "$cpu_split" "$half_forks" "$fan_forks" <<'PY'
import json, sys
ceiling = float(sys.argv[1]); mx, half, fan = (json.loads(a) for a in sys.argv[2:5])
before, after, conns, per = (int(a) for a in sys.argv[5:9])
def ms(r, k, p): return r[k][p] if r[k] else float('nan')
print()
print(f"ceiling (redis-benchmark EVALSHA bid.lua, 50 clients)   {ceiling:>10.0f} calls/s")
print(f"max sustained accepted bids/s (closed loop)             {mx['accepted_rate']:>10.0f}   {mx['accepted_rate']/ceiling:.2f}x ceiling   (target >= 0.5x)")
print(f"  cpu during that run: {sys.argv[9]}")
print(f"  attempted at that load                               {mx['achieved_rate']:>10.0f}/s  ack p50 {ms(mx,'ack_latency_ms','p50'):.2f} ms  p99 {ms(mx,'ack_latency_ms','p99'):.2f} ms")
print(f"half rate, open loop at {half['target_rate']:.0f}/s: ack p50              {ms(half,'ack_latency_ms','p50'):>10.2f} ms   (target < 1 ms)")
print(f"                                      ack p99              {ms(half,'ack_latency_ms','p99'):>10.2f} ms   (target < 5 ms; redis forks during it: {sys.argv[10]})")
print(f"fan-out to {fan['watchers']} watchers: p99                      {ms(fan,'fanout_latency_ms','p99'):>10.2f} ms   (target < 100 ms; p50 {ms(fan,'fanout_latency_ms','p50'):.2f}, max {ms(fan,'fanout_latency_ms','max'):.2f}; redis forks {sys.argv[11]})")
print(f"idle WebSocket memory: {conns} connections, RSS {before} -> {after} KiB: {per:>6} bytes each   (target < 16384)")
if mx.get('proxy_share'):
    print(f"bidding by max: {mx['proxy_share']:.0%} of bidders in the bidding runs; answers beaten by a proxy:"
          f" {mx['beaten_by_proxy']} of {mx['accepted']} accepted (max rate), {half['beaten_by_proxy']} of {half['accepted']} (half rate)")
PY
python3 - "$max" "$halfrun" "$proxy_max" "$proxy_half" <<'PY'
import json, sys
mx, half, pmx, phalf = (json.loads(a) for a in sys.argv[1:5])
def ms(r, p): return r['ack_latency_ms'][p] if r.get('ack_latency_ms') else float('nan')
def change(a, b): return (a / b - 1) * 100 if b else float('nan')
print()
print(f"proxy bids, 30% of bidders by max, beside the runs above (target: within 10%):")
print(f"  closed loop: accepted bids/s {pmx['accepted_rate']:>8.0f} (plain {mx['accepted_rate']:.0f}, {change(pmx['accepted_rate'], mx['accepted_rate']):+.1f}%)"
      f"   ack p50 {ms(pmx,'p50'):.2f} ms (plain {ms(mx,'p50'):.2f})   p99 {ms(pmx,'p99'):.2f} ms (plain {ms(mx,'p99'):.2f}, {change(ms(pmx,'p99'), ms(mx,'p99')):+.1f}%)")
print(f"  half rate ({half['target_rate']:.0f}/s): ack p50 {ms(phalf,'p50'):.2f} ms (plain {ms(half,'p50'):.2f}, {change(ms(phalf,'p50'), ms(half,'p50')):+.1f}%)"
      f"   p99 {ms(phalf,'p99'):.2f} ms (plain {ms(half,'p99'):.2f}, {change(ms(phalf,'p99'), ms(half,'p99')):+.1f}%)   errors {phalf['errors']}")
print(f"  answers beaten by a proxy: {pmx.get('beaten_by_proxy')} of {pmx['accepted']} (closed loop), {phalf.get('beaten_by_proxy')} of {phalf['accepted']} (half rate)")
PY
[ "$listrun" = null ] || python3 - "$listalone" "$listrun" <<'PY'
import json, sys
half, lst = (json.loads(a) for a in sys.argv[1:3])
def ms(r, k, p): return r[k][p] if r.get(k) else float('nan')
print()
print(f"half rate beside 50 lists/s of ?status=active&limit=100 (5,000 cancelled auctions indexed too; alone: the same run without lists, just before):")
print(f"  ack p50 {ms(lst,'ack_latency_ms','p50'):.2f} ms (alone {ms(half,'ack_latency_ms','p50'):.2f})"
      f"   p99 {ms(lst,'ack_latency_ms','p99'):.2f} ms (alone {ms(half,'ack_latency_ms','p99'):.2f})"
      f"   list p50 {ms(lst,'list_latency_ms','p50'):.2f} ms p99 {ms(lst,'list_latency_ms','p99'):.2f} ms, list errors {lst.get('list_errors')}")
PY
[ "$cluster_max" = null ] || python3 - "$max" "$halfrun" "$cluster_max" "$cluster_half" "$replicated_half" <<'PY'
import json, sys
mx, half, cmx, chalf, rhalf = (json.loads(a) for a in sys.argv[1:6])
def ms(r, p): return r['ack_latency_ms'][p] if r['ack_latency_ms'] else float('nan')
def ratio(a, b): return a / b if b else float('nan')
print()
print("Redis Cluster (3 primaries + 3 replicas on this machine), each against the single Redis above:")
print(f"  max sustained accepted bids/s        {cmx['accepted_rate']:>10.0f}   {ratio(cmx['accepted_rate'], mx['accepted_rate']):.2f}x single")
for name, r in (("local", chalf), ("replicated", rhalf)):
    print(f"  half rate ({half['target_rate']:.0f}/s), {name:<10} ack p50 {ms(r,'p50'):>7.2f} ms ({ratio(ms(r,'p50'), ms(half,'p50')):.2f}x)"
          f"   p99 {ms(r,'p99'):>7.2f} ms ({ratio(ms(r,'p99'), ms(half,'p99')):.2f}x)   errors {r['errors']}")
print(f"  replicated against local on the cluster: p50 {ratio(ms(rhalf,'p50'), ms(chalf,'p50')):.2f}x, p99 {ratio(ms(rhalf,'p99'), ms(chalf,'p99')):.2f}x")
PY
