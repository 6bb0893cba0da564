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
#   8. proxy bids   2 and 3 plain and with 30% of the bidders bidding by max (`--proxy-share 0.3`),
#                   alternating, BENCH_PROXY_REPEATS times each (default 5), compared by their
#                   medians (the closed loop of 2 is the first plain one of its kind), the closed
#                   loops with their bids in flight and CPU per accepted bid; then 3
#                   as a plain and a proxy generator at the same time, half the rate each,
#                   compared pair by pair, since the stalls that move p99 then hit both alike
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
# CPU per accepted bid, in microseconds, for the closed-loop runs (2, and the one of 8): each
# process's user + system time over the run (bidding, auction and analytics services, Redis,
# MariaDB from /proc/<pid>/stat before and after; the generator, which starts with the run, from
# the times of the shell that waited for it), divided by every bid accepted in the run, warm-up
# included, printed beside its target and beside issue 16's figures.
#
# Written to target/bench/: each run's JSON report; ack.svg and fanout.svg, latency percentile
# plots (`auction-loadgen plot`) of the runs; summary.txt, the printed summary; report.md, a page
# of the summary, the CPU table and the plots; report.json, the same figures for scripts.
#
# Environment: BENCH_SECONDS (default 10) per measured run; BENCH_WATCHERS (default 10000);
# BENCH_PROXY_REPEATS (default 5) runs of each kind in part 8;
# BENCH_REDIS=cluster adds part 6; BENCH_LIST=1 adds part 7; BENCH_PROXY_SHARE (default 0) is the
# fraction of bidders in the bidding runs (2, 3, 6, 7) that bid by max (`--proxy-share`), so that
# the proxy path of the bid script (prices a max places, bids it beats at once) is measured too.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${BENCH_SECONDS:-10}
watchers=${BENCH_WATCHERS:-10000}
proxy_share=${BENCH_PROXY_SHARE:-0}
proxy_repeats=${BENCH_PROXY_REPEATS:-5}
[[ "$proxy_repeats" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_PROXY_REPEATS must be a whole number of 1 or more (got '$proxy_repeats')" >&2; exit 2; }
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_SECONDS must be a whole number of 1 or more (got '$seconds')" >&2; exit 2; }
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

# ports_free: whatever already listens on the stack's ports (a stack left running) would answer
# the health checks and take the load, and the bench would measure it instead.
ports_free() {
    local port
    for port in "$BIDDING_PORT" "$AUCTION_PORT" "$ANALYTICS_PORT"; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            say "port $port is taken already (a stack left running?): stop what listens there, or the bench would measure it"
            exit 1
        fi
    done
}
ports_free

scripts/dev-services.sh
command -v redis-benchmark >/dev/null || { say "redis-benchmark missing"; exit 1; }
command -v python3 >/dev/null || { say "installing python3 for the report"; $( [ "$(id -u)" -eq 0 ] || echo sudo ) apt-get install -y -qq python3-minimal; }
cargo build --release --bins --quiet
# The release binaries, where cargo put them (dev.sh runs the services from there too).
bin=${CARGO_TARGET_DIR:-target}/release
# service_pid NAME: the pid of the stack's NAME service, as dev.sh started it.
service_pid() {
    local found
    found=$(pgrep -f "^$bin/$1( |\$)" | head -n 1) || true
    [ -n "$found" ] || { say "no $1 process found (looked for $bin/$1)"; exit 1; }
    echo "$found"
}

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
    ports_free
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
loadgen=$bin/auction-loadgen
out=target/bench
mkdir -p "$out"
# This run's files only: a report or plot of an earlier run (say, of a part this one skips) would
# read as this one's.
rm -f "$out"/*.json "$out"/*.cpu "$out"/*.times "$out"/*.redis-* "$out"/*.svg "$out"/summary.txt "$out"/report.md
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# --- 5. idle memory, first: later runs leave freed memory in the allocator ----------------------
pid=$(service_pid bidding-service)
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

# --- CPU per accepted bid ----------------------------------------------------------------------
# Where the CPU of a closed-loop run goes: every process here shares the machine's cores.
clk_tck=$(getconf CLK_TCK)
redis_pid=$(redis-cli INFO server | tr -d '\r' | awk -F: '/^process_id:/ {print $2}')
mariadb_pid=$( { pgrep -x mariadbd || pgrep -x mysqld || true; } | head -n 1)
[ -n "$redis_pid" ] && [ -n "$mariadb_pid" ] || { say "Redis (pid '$redis_pid') or MariaDB (pid '$mariadb_pid') not found"; exit 1; }
auction_pid=$(service_pid auction-service)
analytics_pid=$(service_pid analytics-service)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
cpu_now() {
    echo "$(ticks "$pid") $(ticks "$redis_pid") $(ticks "$analytics_pid") $(ticks "$mariadb_pid") $(ticks "$auction_pid") $(busy_ticks)"
}
# cpu_between BEFORE AFTER: the CPU each process used between two cpu_now readings, one
# "process microseconds" line each.
cpu_between() {
    awk -v tck="$clk_tck" -v before="$1" -v after="$2" 'BEGIN {
        split(before, b, " "); split(after, a, " ")
        n = split("bidding redis analytics mariadb auction machine", name, " ")
        for (i = 1; i <= n; i++) printf "%s %.0f\n", name[i], (a[i] - b[i]) * 1e6 / tck
    }'
}
# cpu_run NAME ARGS...: the generator with ARGS, its report in $out/NAME.json, and the CPU each
# process used during the run in $out/NAME.cpu, one "process microseconds" line each ("machine":
# every busy CPU of the machine, all processes and the kernel). A process's own time only, as
# issue 16 counted it: the CPU of Redis's forks (saves, rewrites) falls in the rest of the machine.
cpu_run() {
    local name=$1 before after
    shift
    before=$(cpu_now)
    # `times` prints the user and system time of the subshell's children: the generator's.
    ( export LC_ALL=C; "$loadgen" "$@" --output json >"$out/$name.json"; times >"$out/$name.times" )
    after=$(cpu_now)
    {
        cpu_between "$before" "$after"
        awk 'NR == 2 {
            split($1, u, /[ms]/); split($2, k, /[ms]/)
            printf "generator %.0f\n", (u[1] * 60 + u[2] + k[1] * 60 + k[2]) * 1e6
        }' "$out/$name.times"
    } >"$out/$name.cpu"
    [ "$(wc -l <"$out/$name.cpu")" = 7 ] || { say "the CPU of the $name run was not measured"; exit 1; }
}

# Redis commands per accepted bid: every command Redis ran during a run (a script's own calls one
# by one, and the EVALSHA), from INFO commandstats before and after, one "command calls" line each.
cmdstats() { redis-cli INFO commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_/ {sub("cmdstat_", "", $1); print $1, $3}'; }

# --- 2. max sustained rate --------------------------------------------------------------------
settle
say "closed loop, 200 bidders over 100 auctions, ${seconds}s"
f0=$(forks)
cmdstats >"$out/max.redis-before"
cpu_run max --api-url "$api" --ws-url "$ws" --concurrency 200 --auctions 100 --proxy-share "$proxy_share" \
    --warmup 2s --duration "${seconds}s"
cmdstats >"$out/max.redis-after"
max=$(cat "$out/max.json")
max_forks=$(( $(forks) - f0 ))
max_attempted=$(echo "$max" | json "round(d['achieved_rate'])")

# --- 3. half rate ------------------------------------------------------------------------------
half=$(( max_attempted / 2 ))
settle
say "open loop at $half bids/s, ${seconds}s"
f0=$(forks)
cpu_run half --api-url "$api" --ws-url "$ws" --rate "$half" --bidders 200 --auctions 100 --proxy-share "$proxy_share" \
    --warmup 2s --duration "${seconds}s"
halfrun=$(cat "$out/half.json")
half_forks=$(( $(forks) - f0 ))

# --- 8. proxy bids ------------------------------------------------------------------------------
# 2 and 3 again with 30% of the bidders bidding by max (the half rate is the plain run's), so the
# proxy path of the bid script is measured beside the plain one.
settle
say "proxy: closed loop, 30% of 200 bidders by max, ${seconds}s"
cpu_run proxy-max --api-url "$api" --ws-url "$ws" --concurrency 200 --auctions 100 --proxy-share 0.3 \
    --warmup 2s --duration "${seconds}s"
proxy_max=$(cat "$out/proxy-max.json")
# Latency here varies from run to run by more than the 10% compared (stalls of tens of
# milliseconds that hold up every process at once, forks or none), so one run of each says
# little: plain and proxy runs alternate, $proxy_repeats of each (the order swapped every other
# pair, so a drift over the bench favours neither), compared by their medians. The closed loops
# above are the first pair.
# Each closed loop's CPU is measured too (the host's speed varies from run to run, so one run of
# each kind says as little of CPU per bid as of latency).
cp "$out/proxy-max.json" "$out/ab-closed-proxy-1.json"
cp "$out/proxy-max.cpu" "$out/ab-closed-proxy-1.cpu"
if awk -v share="$proxy_share" 'BEGIN { exit !(share + 0 == 0) }'; then
    cp "$out/max.json" "$out/ab-closed-plain-1.json"
    cp "$out/max.cpu" "$out/ab-closed-plain-1.cpu"
else
    # The run of part 2 had bidders by max too (BENCH_PROXY_SHARE): a plain one of its own.
    settle
    say "proxy: closed loop, plain (1 of $proxy_repeats), ${seconds}s"
    cpu_run ab-closed-plain-1 --api-url "$api" --ws-url "$ws" --concurrency 200 --auctions 100 --proxy-share 0 \
        --warmup 2s --duration "${seconds}s"
fi
# pair_order I: the two kinds of pair I in the order they run, swapped every other pair.
pair_order() { if [ $(($1 % 2)) = 0 ]; then echo "proxy plain"; else echo "plain proxy"; fi; }
# share_of KIND: the generator's --proxy-share for a run of that kind.
share_of() { if [ "$1" = proxy ]; then echo 0.3; else echo 0; fi; }
# ab_pairs LOOP FROM TITLE ARGS...: pairs FROM..$proxy_repeats of plain and proxy runs of the
# generator with ARGS, each in $out/ab-LOOP-KIND-I.json; the closed loops' CPU in .cpu beside it.
ab_pairs() {
    local loop=$1 from=$2 title=$3 i kind
    shift 3
    for i in $(seq "$from" "$proxy_repeats"); do
        for kind in $(pair_order "$i"); do
            settle
            say "proxy: $title, $kind ($i of $proxy_repeats), ${seconds}s"
            if [ "$loop" = closed ]; then
                cpu_run "ab-$loop-$kind-$i" --api-url "$api" --ws-url "$ws" "$@" --proxy-share "$(share_of "$kind")" \
                    --warmup 2s --duration "${seconds}s"
            else
                $loadgen --api-url "$api" --ws-url "$ws" "$@" --proxy-share "$(share_of "$kind")" \
                    --warmup 2s --duration "${seconds}s" --output json >"$out/ab-$loop-$kind-$i.json"
            fi
        done
    done
}
ab_pairs closed 2 "closed loop" --concurrency 200 --auctions 100
ab_pairs half 1 "open loop at $half bids/s" --rate "$half" --bidders 200 --auctions 100
cp "$out/ab-half-proxy-1.json" "$out/proxy-half.json"
# Side by side: the stalls that move a run's p99 by tens of percent hit every process at once, so
# two runs apart compare the stalls each happened to meet more than the bids. Here a plain and a
# 30%-by-max generator run at the same time, each at half of the half rate on 50 auctions of its
# own, $proxy_repeats times (which starts first alternates), and are compared pair by pair.
side=$(( half / 2 ))
for i in $(seq 1 "$proxy_repeats"); do
    settle
    say "proxy: side by side, plain and proxy at $side bids/s each ($i of $proxy_repeats), ${seconds}s"
    pids=()
    for kind in $(pair_order "$i"); do
        $loadgen --api-url "$api" --ws-url "$ws" --rate "$side" --bidders 100 --auctions 50 --proxy-share "$(share_of "$kind")" \
            --warmup 2s --duration "${seconds}s" --output json >"$out/ab-side-$kind-$i.json" &
        pids+=("$!")
    done
    for p in "${pids[@]}"; do wait "$p"; done
done

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
$loadgen --api-url "$api" --ws-url "$ws" --rate 2 --bidders 2 --watchers "$watchers" \
    --warmup 1s --duration "${seconds}s" --output json >"$out/fanout.json" &
fanrun=$!
# The CPU of delivering events, apart from that of connecting: once every watcher is connected,
# each process's CPU over half the run (at least a second), per message delivered: each accepted
# bid's event to every connection counted open when the window began (the bidders' included).
fan_conns=0
for _ in $(seq 1 240); do
    fan_conns=$(ss -Htn state established "( sport = :$BIDDING_PORT )" | wc -l)
    [ "$fan_conns" -ge "$watchers" ] && break
    sleep 0.25
done
[ "$fan_conns" -ge "$watchers" ] || say "fan-out: only $fan_conns of $watchers watchers connected after 60 s; measuring those"
sleep 1
fan_window=$(( seconds > 1 ? seconds / 2 : 1 ))
fan_before=$(cpu_now)
sleep "$fan_window"
fan_after=$(cpu_now)
wait "$fanrun" || { say "the fan-out run failed"; exit 1; }
fanout=$(cat "$out/fanout.json")
fan_forks=$(( $(forks) - f0 ))
fan_bids_per_s=$(echo "$fanout" | json "(d['accepted'] + d['accepted_warmup']) / (d['warmup_s'] + d['duration_s'])")
{
    cpu_between "$fan_before" "$fan_after"
    awk -v r="$fan_bids_per_s" -v w="$fan_window" -v c="$fan_conns" 'BEGIN { printf "messages %.0f\n", r * w * c }'
} >"$out/fanout.cpu"
[ "$(awk '/^messages/ {print $2}' "$out/fanout.cpu")" -gt 0 ] || { say "the fan-out run delivered no message to measure"; exit 1; }

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

# --- pictures ----------------------------------------------------------------------------------
# Latency percentile plots of the runs. A plot that fails is said and skipped: the figures above
# are worth more than a picture of them.
plots=()
# plot NAME LATENCY TITLE RUN...: $out/NAME.svg, LATENCY (ack or fanout) of each run's report.
plot() {
    local name=$1 latency=$2 title=$3 inputs=() run
    shift 3
    for run in "$@"; do inputs+=(--input "$out/$run.json"); done
    if "$loadgen" plot --latency "$latency" --title "$title" "${inputs[@]}" --output "$out/$name.svg"; then
        plots+=("$name.svg")
    else
        say "the $name plot failed"
    fi
}
plot ack ack "ack latency by percentile: the closed loop, the half rate, and each with 30% of bidders by max" \
    max half proxy-max proxy-half
plot fanout fanout "fan-out latency by percentile: one auction, $watchers watchers, 2 bids/s" fanout
[ "$listrun" = null ] || plot list ack "ack latency by percentile at the half rate: alone, and beside 50 lists/s" \
    half-list-alone half-list
[ "$cluster_max" = null ] || plot cluster ack "ack latency by percentile: single Redis and Redis Cluster" \
    max half cluster-max cluster-half cluster-replicated-half

say "raw reports in $out/"
{
python3 - "$ceiling" "$max" "$halfrun" "$fanout" "$before" "$after" "$open" "$per_conn" "$out/max.cpu" "$half_forks" "$fan_forks" "$clk_tck" "$max_forks" "$out/figures.json" <<'PY'
import json, sys
ceiling = float(sys.argv[1]); mx, half, fan = (json.loads(a) for a in sys.argv[2:5])
before, after, conns, per = (int(a) for a in sys.argv[5:9])
cpu = {k: int(v) for k, v in (line.split() for line in open(sys.argv[9]))}
ticks = {k: round(v * int(sys.argv[12]) / 1e6) for k, v in cpu.items()}
def ms(r, k, p): return r[k][p] if r[k] else float('nan')
def fig(r, k, p): return r[k][p] if r[k] else None
# The figures printed here, for report.json.
json.dump({
    "ceiling_evalsha_per_s": ceiling,
    "max_accepted_per_s": mx['accepted_rate'], "max_ratio_to_ceiling": mx['accepted_rate'] / ceiling,
    "max_attempted_per_s": mx['achieved_rate'],
    "max_ack_ms": {p: fig(mx, 'ack_latency_ms', p) for p in ('p50', 'p99')},
    "half_rate_per_s": half['target_rate'], "half_ack_ms": {p: fig(half, 'ack_latency_ms', p) for p in ('p50', 'p99')},
    "fanout_watchers": fan['watchers'], "fanout_ms": {p: fig(fan, 'fanout_latency_ms', p) for p in ('p50', 'p99', 'max')},
    "idle_connections": conns, "idle_rss_kib": [before, after], "idle_bytes_per_connection": per,
    "redis_forks": {"max": int(sys.argv[13]), "half": int(sys.argv[10]), "fanout": int(sys.argv[11])},
}, open(sys.argv[14], "w"), indent=2)
print()
print(f"ceiling (redis-benchmark EVALSHA bid.lua, 50 clients)   {ceiling:>10.0f} calls/s")
print(f"max sustained accepted bids/s (closed loop)             {mx['accepted_rate']:>10.0f}   {mx['accepted_rate']/ceiling:.2f}x ceiling   (target >= 0.5x)")
print(f"  cpu during that run: redis {ticks['redis']}, bidding-service {ticks['bidding']}, everything else (mostly the load generator)"
      f" {ticks['machine'] - ticks['redis'] - ticks['bidding']} of {ticks['machine']} busy ticks; redis forks {sys.argv[13]} (per bid: below)")
print(f"  attempted at that load                               {mx['achieved_rate']:>10.0f}/s  ack p50 {ms(mx,'ack_latency_ms','p50'):.2f} ms  p99 {ms(mx,'ack_latency_ms','p99'):.2f} ms")
print(f"half rate, open loop at {half['target_rate']:.0f}/s: ack p50              {ms(half,'ack_latency_ms','p50'):>10.2f} ms   (target < 1 ms)")
print(f"                                      ack p99              {ms(half,'ack_latency_ms','p99'):>10.2f} ms   (target < 5 ms; redis forks during it: {sys.argv[10]})")
print(f"fan-out to {fan['watchers']} watchers: p99                      {ms(fan,'fanout_latency_ms','p99'):>10.2f} ms   (target < 100 ms; p50 {ms(fan,'fanout_latency_ms','p50'):.2f}, max {ms(fan,'fanout_latency_ms','max'):.2f}; redis forks {sys.argv[11]})")
print(f"idle WebSocket memory: {conns} connections, RSS {before} -> {after} KiB: {per:>6} bytes each   (target < 16384)")
if mx.get('proxy_share'):
    print(f"bidding by max: {mx['proxy_share']:.0%} of bidders in the bidding runs; answers beaten by a proxy:"
          f" {mx['beaten_by_proxy']} of {mx['accepted']} accepted (max rate), {half['beaten_by_proxy']} of {half['accepted']} (half rate)")
PY
python3 - "$out" "$out/cpu.json" <<'PY'
import json, os, sys
out = sys.argv[1]
# process, its key in NAME.cpu, target and issue 16's figure (us per accepted bid)
rows = [("bidding service", "bidding", 25, 43), ("redis", "redis", 30, 44), ("load generator", "generator", 25, 57),
        ("analytics service", "analytics", None, None), ("mariadb", "mariadb", None, None),
        ("auction service", "auction", None, None), ("rest of the machine", "rest", None, None)]
def load(name):
    if not os.path.exists(f"{out}/{name}.cpu"):
        return None
    r = json.load(open(f"{out}/{name}.json"))
    us = {k: int(v) for k, v in (line.split() for line in open(f"{out}/{name}.cpu"))}
    us["rest"] = us["machine"] - sum(us[k] for _, k, _, _ in rows if k != "rest")
    bids = r['accepted'] + r['accepted_warmup']
    if not r['accepted']:
        sys.exit(f"bench: the {name} run accepted no bid, so it has no CPU per bid")
    return {"accepted": bids, "accepted_measured": r['accepted'], "seconds": r['warmup_s'] + r['duration_s'],
            "cpu_us": us, "us_per_bid": {k: v / bids for k, v in us.items()},
            # issue 16's basis: the run's CPU over the measured period's bids alone, the generator
            # as everything on the machine but Redis and the bidding service
            "issue16_basis": {k: v / r['accepted'] for k, v in
                              (("bidding", us["bidding"]), ("redis", us["redis"]),
                               ("generator", us["machine"] - us["redis"] - us["bidding"]))}}
runs = {"plain": load("max"), "proxy": load("proxy-max"), "half": load("half")}
plain, proxy = runs["plain"], runs["proxy"]
print()
print("CPU per accepted bid, closed loop: us of CPU (user + system) per bid accepted in the run, warm-up included")
print(f"  {'process':<20} {'us/bid':>8} {'target':>8} {'met':>4} {'issue 16':>9} {'30% by max':>11}")
for label, key, target, before in rows:
    t = f"<= {target}" if target else "-"
    met = ("yes" if plain['us_per_bid'][key] <= target else "no") if target else "-"
    b = f"~{before}" if before else "-"
    p = f"{proxy['us_per_bid'][key]:.1f}" if proxy else "-"
    print(f"  {label:<20} {plain['us_per_bid'][key]:>8.1f} {t:>8} {met:>4} {b:>9} {p:>11}")
print(f"  {'bids accepted':<20} {plain['accepted']:>8,} {'':>8} {'':>4} {'':>9} {format(proxy['accepted'], ',') if proxy else '-':>11}"
      f"   (over {plain['seconds']:.0f} s of warm-up and run)")
b = plain['issue16_basis']
print(f"  on issue 16's basis (the run's CPU over the {plain['accepted_measured']} bids of the measured period alone, the generator as"
      f" all but redis and bidding): bidding {b['bidding']:.1f}, redis {b['redis']:.1f}, generator {b['generator']:.1f}")
for name, run in (("closed loop", plain), ("closed loop, 30% by max", proxy)):
    if run and run['cpu_us']['rest'] > 0.2 * run['cpu_us']['machine']:
        print(f"  NOTE: in the {name}, {run['cpu_us']['rest'] / run['cpu_us']['machine']:.0%} of the machine's busy CPU was other work:"
              f" contention inflates these figures; compare runs on a quiet machine")
hr = runs["half"]
print(f"  at the half rate (open loop, {hr['accepted'] / hr['seconds']:.0f} accepted/s): " +
      ", ".join(f"{label} {hr['us_per_bid'][key]:.1f}" for label, key, _, _ in rows if key != "rest") +
      " us per bid (docs/capacity.md: fewer bids per wake-up cost more each)")
# Redis commands per accepted bid in the plain closed loop (INFO itself and the bench's own calls
# are a handful over the run).
def counts(path):
    return {k: int(v) for k, v in (line.split() for line in open(path))}
before, after = counts(f"{out}/max.redis-before"), counts(f"{out}/max.redis-after")
calls = {k: (v - before.get(k, 0)) / plain['accepted'] for k, v in after.items() if v > before.get(k, 0)}
top = sorted(calls.items(), key=lambda kv: -kv[1])
print(f"  redis commands per accepted bid: {sum(calls.values()):.2f} in all: "
      + ", ".join(f"{k} {v:.2f}" for k, v in top if v >= 0.01))
# Fan-out: the CPU of delivering events to connected watchers, per message (one event to one watcher).
fan = counts(f"{out}/fanout.cpu")
per_msg = {k: fan[k] / fan["messages"] for k in ("bidding", "redis", "machine")}
print(f"  fan-out, per message delivered (~{fan['messages']:,} over the window): bidding service {per_msg['bidding']:.2f} us,"
      f" redis {per_msg['redis']:.3f} us, whole machine {per_msg['machine']:.2f} us (the watchers' client included)")
json.dump({"targets_us": {k: t for _, k, t, _ in rows if t}, "issue16_us": {k: v for _, k, _, v in rows if v},
           "runs": runs, "redis_calls_per_bid": calls, "fanout_us_per_message": per_msg},
          open(sys.argv[2], "w"), indent=2)
PY
python3 - "$max" "$halfrun" "$proxy_max" "$out" "$proxy_repeats" <<'PY'
import json, statistics, sys
mx, half, pmx = (json.loads(a) for a in sys.argv[1:4])
out, repeats = sys.argv[4], int(sys.argv[5])
runs = {(loop, k): [json.load(open(f"{out}/ab-{loop}-{k}-{i}.json")) for i in range(1, repeats + 1)]
        for loop in ("closed", "half", "side") for k in ("plain", "proxy")}
def ms(r, p): return r['ack_latency_ms'][p] if r.get('ack_latency_ms') else float('nan')
def fig(r, p): return r['accepted_rate'] if p == 'rate' else ms(r, p)
def change(a, b): return (a / b - 1) * 100 if b else float('nan')
def median(loop, kind, p): return statistics.median(fig(r, p) for r in runs[(loop, kind)])
def spread(loop, kind, p): return ", ".join(f"{fig(r, p):.{0 if p == 'rate' else 2}f}" for r in runs[(loop, kind)])
print()
print(f"proxy bids, 30% of bidders by max, beside plain bids: the median of {repeats} alternating runs each (target: within 10%)")
for loop, title, figures in (("closed", "closed loop", ("rate", "p50", "p99")),
                             ("half", f"half rate ({half['target_rate']:.0f}/s)", ("p50", "p99"))):
    print(f"  {title}:")
    for p in figures:
        label, unit, digits = ("accepted bids/s", "", 0) if p == "rate" else (f"ack {p}", " ms", 2)
        a, b = median(loop, "proxy", p), median(loop, "plain", p)
        print(f"    {label:<16} {a:>9.{digits}f}{unit} (plain {b:.{digits}f}{unit}, {change(a, b):+.1f}%)"
              f"   runs: proxy {spread(loop, 'proxy', p)}; plain {spread(loop, 'plain', p)}")
    if loop == "closed":
        # Little's law: a closed loop's mean ack is the bids in flight over the rate, so at the
        # limit its latency moves with its throughput; the open loops compare latency at one rate.
        def in_flight(k): return statistics.median(r['accepted_rate'] * r['ack_latency_ms']['mean'] / 1000 for r in runs[("closed", k)])
        print(f"    bids in flight   {in_flight('proxy'):>9.1f}    (plain {in_flight('plain'):.1f}: the rate times the mean ack; with as many"
              f" in flight, a closed loop's ack latency is the inverse of its throughput)")
        # CPU per accepted bid, each kind's median over its runs (warm-up included, as in the CPU table).
        cpu = {k: [] for k in ("plain", "proxy")}
        for k in cpu:
            for i, r in enumerate(runs[("closed", k)], 1):
                us = {n: int(v) for n, v in (line.split() for line in open(f"{out}/ab-closed-{k}-{i}.cpu"))}
                cpu[k].append({n: v / (r['accepted'] + r['accepted_warmup']) for n, v in us.items()})
        def cpu_median(k, n): return statistics.median(c[n] for c in cpu[k])
        print("    CPU per accepted bid, us (each kind's median over its runs, warm-up included):")
        for label, n in (("bidding service", "bidding"), ("redis", "redis"), ("load generator", "generator"),
                         ("analytics service", "analytics"), ("mariadb", "mariadb"), ("whole machine", "machine")):
            a, b = cpu_median("proxy", n), cpu_median("plain", n)
            print(f"      {label:<18} {a:>7.1f} (plain {b:.1f}, {change(a, b):+.1f}%)")
side = runs[("side", "plain")][0]
print(f"  side by side, a plain and a 30%-by-max generator at {side['target_rate']:.0f}/s each at the same time (the same stalls hit both),"
      f" the median of {repeats} pairs' changes:")
pairs = list(zip(runs[("side", "proxy")], runs[("side", "plain")]))
side_p = {p: statistics.median(change(fig(a, p), fig(b, p)) for a, b in pairs) for p in ("p50", "p99")}
for p in ("p50", "p99"):
    print(f"    ack {p:<12} {side_p[p]:+9.1f}%   pairs (proxy/plain ms): "
          + ", ".join(f"{fig(a, p):.2f}/{fig(b, p):.2f}" for a, b in pairs))
# The verdict: throughput from the closed loops, latency from the side-by-side pairs (the runs
# of one kind at the half rate apart differ from each other by more than the 10% compared).
def within(x): return "yes" if abs(x) <= 10 else "NO"
rate = change(median("closed", "proxy", "rate"), median("closed", "plain", "rate"))
def span(p): return max((max(fig(r, p) for r in runs[("half", k)]) / min(fig(r, p) for r in runs[("half", k)]) - 1) * 100
                        for k in ("plain", "proxy"))
print(f"  within 10%: throughput {within(rate)} ({rate:+.1f}%); ack latency side by side p50 {within(side_p['p50'])}"
      f" ({side_p['p50']:+.1f}%), p99 {within(side_p['p99'])} ({side_p['p99']:+.1f}%)"
      f"   (the half-rate runs of one kind differ by up to {span('p50'):.0f}% in p50 and {span('p99'):.0f}% in p99 between themselves)")
errors = sum(r['errors'] for rs in runs.values() for r in rs)
def beaten(loop):
    rs = runs[(loop, "proxy")]
    return f"{sum(r.get('beaten_by_proxy', 0) for r in rs)} of {sum(r['accepted'] for r in rs)}"
print(f"  answers beaten by a proxy: {beaten('closed')} (closed loop), {beaten('half')} (half rate), {beaten('side')} (side by side);"
      f" errors in these runs {errors}")
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
} | tee "$out/summary.txt"

# --- the report -----------------------------------------------------------------------------------
python3 - "$out" "$seconds" "$watchers" "$proxy_share" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')" "${plots[@]}" <<'PY'
import datetime, json, os, platform, sys
out, seconds, watchers, share, commit, plots = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
cpu = json.load(open(f"{out}/cpu.json"))
figures = json.load(open(f"{out}/figures.json"))
summary = open(f"{out}/summary.txt").read().strip("\n")
reports = sorted(f for f in os.listdir(out) if f.endswith(".json") and f not in ("cpu.json", "figures.json", "report.json"))
names = {"bidding": "bidding service", "redis": "Redis", "generator": "load generator", "analytics": "analytics service",
         "mariadb": "MariaDB", "auction": "auction service", "rest": "rest of the machine"}
plain, proxy = cpu["runs"]["plain"], cpu["runs"]["proxy"]
when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
md = [f"# Benchmark report", "",
      f"`make bench` of {when} at commit {commit}, on {os.cpu_count()} cores ({platform.system()} {platform.release()}):"
      f" {seconds} s per measured run, {watchers} watchers, BENCH_PROXY_SHARE={share}.", "",
      "## Summary", "", "As printed by `scripts/bench.sh`:", "", "```text", summary, "```", "",
      "## CPU per accepted bid", "",
      "Closed loop, 200 bidders over 100 auctions. Each process's CPU time (user + system) over the run, from",
      "`/proc/<pid>/stat` before and after (the load generator's from the shell that waited for it), divided by",
      "every bid accepted in the run, warm-up included. Issue 16's figures divided the run's CPU by the",
      "measured period's bids alone and counted everything but Redis and the bidding service as the generator;",
      "this run on that basis is below the table.", "",
      "| process | µs per bid | target | met | issue 16 | 30% by max |", "|---|---:|---:|:-:|---:|---:|"]
for key, name in names.items():
    target, before = cpu["targets_us"].get(key), cpu["issue16_us"].get(key)
    us = plain["us_per_bid"][key]
    cells = [name, f"{us:.1f}", f"≤ {target}" if target else "", ("yes" if us <= target else "no") if target else "",
             f"~{before}" if before else "", f"{proxy['us_per_bid'][key]:.1f}" if proxy else ""]
    md.append("| " + " | ".join(cells) + " |")
md.append(f"| bids accepted | {plain['accepted']:,} | | | | {format(proxy['accepted'], ',') if proxy else ''} |")
b = plain["issue16_basis"]
md += ["", f"On issue 16's basis: bidding service {b['bidding']:.1f} µs, Redis {b['redis']:.1f} µs, generator"
       f" (everything else) {b['generator']:.1f} µs per bid.", "", "## Latency distributions", ""]
if plots:
    md += [f"![{p[:-4]}]({p})" for p in plots]
    md += ["", "Each line is a run's report; the percentile axis is a log scale of 1 / (1 - q), so p90, p99,",
           "p99.9 are evenly spaced; the legend gives each run's p50, p99 and max."]
else:
    md.append("No plot was made (see the bench's output).")
md += ["", "## Files", "", "Each run's JSON report (`auction-loadgen --output json`): " +
       ", ".join(f"[{r}]({r})" for r in reports) + ".", "`report.json`: the figures above, for scripts.", ""]
open(f"{out}/report.md", "w").write("\n".join(md))
json.dump({"when": when, "commit": commit, "seconds": int(seconds), "watchers": int(watchers), "proxy_share": float(share),
           "figures": figures, "cpu_per_accepted_bid": cpu, "plots": plots, "reports": reports},
          open(f"{out}/report.json", "w"), indent=2)
print()
print(f"report: {out}/report.md (the summary, the CPU table and the plots: {', '.join(f'{out}/{p}' for p in plots) or 'none'}); figures for scripts in {out}/report.json")
PY
