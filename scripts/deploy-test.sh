#!/usr/bin/env bash
# The failure test across hosts: the compose deployment (each service, Redis node and MariaDB in a
# container of its own, behind nginx) under load while containers die.
#
#   1. builds the images offline and brings the deployment up under its own project name and port
#   2. creates six auctions through nginx, three of them closing during the run, and runs
#      auction-loadgen through nginx for DEPLOY_TEST_SECONDS (45) with --reconnect, writing every
#      bid it saw accepted to a file
#   3. meanwhile: kills the Redis primary that holds the most of the auctions (its replica is
#      promoted; the dead node is then started again and rejoins as its replica), kills a bidding
#      node (its clients reconnect through nginx and resync), disconnects an analytics instance
#      from the network for 10 s, and kills the leading auction service (another must lead within
#      LEADER_TTL)
#   4. afterwards checks that every bid the load generator saw accepted is in MySQL exactly once,
#      that every auction that closed ended once and none was left open, and that no bid was
#      placed at or after a close (by Redis time, as MySQL has it); prints the figures: seconds until bidding resumed after each
#      kill, the leader's failover, bids lost, duplicates
#
# BID_DURABILITY (default replicated here) is the bidding nodes' setting: with `replicated` no
# acknowledged bid may be lost, and the test fails if one is; with `local` the number lost to the
# primary's death is printed, not judged. Traffic stays between this machine and the project's
# own containers; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

export COMPOSE_PROJECT_NAME=${DEPLOY_TEST_PROJECT:-auction-deploytest}
export AUCTION_HTTP_PORT=${DEPLOY_TEST_PORT:-18180}
export BID_DURABILITY=${BID_DURABILITY:-replicated}
seconds=${DEPLOY_TEST_SECONDS:-45}
leader_ttl=10
base="http://127.0.0.1:$AUCTION_HTTP_PORT"
out=target/deploy-test
mkdir -p "$out"
rm -f "$out"/*

say() { printf 'deploy-test: %s\n' "$*" >&2; }
trap 'say "error at line $LINENO: $BASH_COMMAND"' ERR
fail() { say "FAILED: $*"; failed=1; }
failed=0
compose() { scripts/compose.sh "$@"; }
container() { compose ps -q "$1"; }
now_ms() { date +%s%3N; }
# seconds_or_never MS: "12.3 s", or "never" when MS is empty.
seconds_or_never() { if [ -n "$1" ]; then awk -v ms="$1" 'BEGIN {printf "%.1f s", ms / 1000}'; else echo never; fi; }

cleanup() {
    compose down --volumes --remove-orphans --timeout 5 >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

DOCKER_UP_TIMEOUT=300 scripts/docker-up.sh
cargo build --release --locked -q -p auction-loadgen
loadgen=${CARGO_TARGET_DIR:-target}/release/auction-loadgen

sql() { docker exec -i "$(container mariadb)" mariadb -uauction -p"${MYSQL_PASSWORD:-auction}" -N -B auction -e "$1"; }
redis() { docker exec "$1" redis-cli "${@:2}"; }

# --- auctions ---------------------------------------------------------------------------------------
iso() { date -u -d "@$(( $1 / 1000 )).$(printf '%03d' $(( $1 % 1000 )))" +%Y-%m-%dT%H:%M:%S.%3NZ; }
create() { # create END_MS TITLE -> id
    local body
    body=$(printf '{"title":"%s","start_time":"%s","end_time":"%s","starting_bid":"1.00","extension_window_s":0}' \
        "$2" "$(iso "$(now_ms)")" "$(iso "$1")")
    curl -fsS -X POST "$base/api/v1/auctions" -H 'content-type: application/json' -d "$body" |
        sed -E 's/.*"auction_id":"([^"]+)".*/\1/'
}
start_ms=$(now_ms)
ids=()
closes=()
for i in 1 2 3; do ids+=("$(create $(( start_ms + 600000 )) "long lot $i")"); done
for at in 12 30 40; do
    close=$(( start_ms + at * 1000 ))
    id=$(create "$close" "closing lot at ${at}s")
    ids+=("$id")
    closes+=("$id:$close")
done
say "auctions: ${ids[*]}"

# The primary that holds the most of the run's auctions: the one to kill.
primary="" best=-1 affected=""
for n in 1 2 3 4 5 6; do
    c=$(container "redis-$n")
    redis "$c" role | head -n 1 | grep -qx master || continue
    held=""
    for id in "${ids[@]}"; do
        [ "$(redis "$c" exists "auction:{$id}" 2>/dev/null)" = 1 ] && held="$held $id"
    done
    count=$(wc -w <<<"$held")
    if [ "$count" -gt "$best" ]; then best=$count; primary="redis-$n"; affected=$held; fi
done

# --- the run --------------------------------------------------------------------------------------
say "load through nginx for ${seconds}s (BID_DURABILITY=$BID_DURABILITY)"
"$loadgen" --api-url "$base" --ws-url "ws://127.0.0.1:$AUCTION_HTTP_PORT" \
    --auction-id "$(IFS=,; echo "${ids[*]}")" --bidders 24 --rate 120 --warmup 1s --duration "${seconds}s" \
    --timeout 3s --reconnect --accepted-out "$out/accepted.txt" --output json >"$out/report.json" 2>"$out/loadgen.log" &
load=$!
t0=$(now_ms)
at() { local wait_ms=$(( t0 + $1 * 1000 - $(now_ms) )); [ "$wait_ms" -le 0 ] || sleep "$(( wait_ms / 1000 )).$(printf '%03d' $(( wait_ms % 1000 )))"; }

at 3
# One fault at a time, where they would hide each other: the others come once bidding has resumed
# on the dead primary's auctions (the lease, too, lives on one of the primaries).
kill_redis=$(now_ms)
docker kill "$(container "$primary")" >/dev/null
say "killed $primary, the primary of $best of the auctions"
# Once its replica has taken over, the dead node is started again, as a host would be replaced: it
# rejoins as the new primary's replica. Until then the promoted primary has no replica, so with
# BID_DURABILITY=replicated its auctions refuse bids as unavailable (nothing it accepts could be
# confirmed); with local they resume at the promotion.
(
    survivor=""
    for n in 1 2 3 4 5 6; do [ "redis-$n" = "$primary" ] || { survivor=$(container "redis-$n"); break; }; done
    while [ $(( $(now_ms) - kill_redis )) -lt 30000 ]; do
        if redis "$survivor" cluster info 2>/dev/null | grep -q '^cluster_state:ok' &&
            redis "$survivor" cluster nodes 2>/dev/null | grep -q "$primary .*master,fail\|$primary .*fail"; then
            echo $(( $(now_ms) - kill_redis )) >"$out/promoted_ms"
            docker start "$(container "$primary")" >/dev/null
            exit 0
        fi
        sleep 0.2
    done
) &
watch_redis=$!

at 22
kill_bidding=$(now_ms)
docker kill "$(container bidding-1)" >/dev/null
say "killed bidding-1"

at 24
analytics=$(container analytics-1)
network=$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}' "$analytics" | awk '{print $1}')
docker network disconnect "$network" "$analytics"
say "disconnected analytics-1 from $network for 10 s"
at 26
leader=$(curl -fsS "$base/api/v1/leader" | sed -E 's/.*"instance_id":"([^"]*)".*/\1/')
case "$leader" in auction-1 | auction-2) ;; *) fail "no auction service leads before the kill: $leader"; leader=auction-1 ;; esac
docker kill "$(container "$leader")" >/dev/null
# Stamped once the process is dead: the lease outlives it by at most LEADER_TTL.
kill_leader=$(now_ms)
say "killed the leader, $leader"
# Watched in the background, so the other faults keep their times: the ms until another leads.
(
    while [ $(( $(now_ms) - kill_leader )) -lt $(( (leader_ttl + 5) * 1000 )) ]; do
        now_leader=$(curl -fsS --max-time 1 "$base/api/v1/leader" 2>/dev/null | sed -E 's/.*"instance_id":"([^"]*)".*/\1/' || true)
        if [ -n "$now_leader" ] && [ "$now_leader" != "$leader" ] && [[ "$now_leader" == auction-* ]]; then
            echo $(( $(now_ms) - kill_leader )) >"$out/failover_ms"
            exit 0
        fi
        sleep 0.1
    done
) &
watch_leader=$!

at 34
docker network connect "$network" "$analytics"
say "reconnected analytics-1"

wait "$load" || fail "the load generator failed (see $out/loadgen.log)"
wait "$watch_leader" || true
wait "$watch_redis" || true
promoted_ms=$(cat "$out/promoted_ms" 2>/dev/null || true)
[ -n "$promoted_ms" ] || fail "no replica of $primary took over within 30 s"
failover_ms=$(cat "$out/failover_ms" 2>/dev/null || true)
[ -n "$failover_ms" ] || fail "no other auction service led within $(( leader_ttl + 5 )) s"
# The lease runs out LEADER_TTL after the dead leader's last renewal; followers look every 200 ms.
[ -z "$failover_ms" ] || [ "$failover_ms" -le $(( leader_ttl * 1000 + 1000 )) ] ||
    fail "another auction service led only after ${failover_ms} ms (LEADER_TTL ${leader_ttl} s)"
report=$(cat "$out/report.json")
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" <<<"$report"; }

# --- what was kept ----------------------------------------------------------------------------------
sort -u -k2,2 "$out/accepted.txt" | awk '{print $1, $2}' | sort >"$out/accepted.ids"
accepted=$(wc -l <"$out/accepted.ids")
[ "$accepted" -gt 0 ] || fail "no bid was accepted"
# The analytics service writes what the logs hold; give it (and the restarted pieces) time.
in_mysql=0
for _ in $(seq 1 120); do
    sql "SELECT auction_id, bid_id FROM bids" | tr '\t' ' ' | sort >"$out/mysql.ids"
    in_mysql=$(comm -12 "$out/accepted.ids" "$out/mysql.ids" | wc -l)
    [ "$in_mysql" -eq "$accepted" ] && break
    sleep 1
done
lost=$(( accepted - in_mysql ))
comm -23 "$out/accepted.ids" "$out/mysql.ids" >"$out/lost.ids"
duplicates=$(sql "SELECT COUNT(*) FROM (SELECT 1 FROM bids GROUP BY auction_id, bid_id HAVING COUNT(*) > 1) d")
[ "$duplicates" = 0 ] || fail "$duplicates bids are in MySQL more than once"
if [ "$lost" -gt 0 ]; then
    if [ "$BID_DURABILITY" = replicated ]; then fail "$lost acknowledged bids are not in MySQL ($out/lost.ids)"
    else say "$lost acknowledged bids lost with BID_DURABILITY=local ($out/lost.ids)"; fi
fi

# --- every close happened, once -------------------------------------------------------------------
any_redis=""
for n in 1 2 3 4 5 6; do
    c=$(container "redis-$n")
    if [ -n "$c" ] && redis "$c" ping >/dev/null 2>&1; then any_redis=$c; break; fi
done
for entry in "${closes[@]}"; do
    id=${entry%%:*} close=${entry##*:}
    status=$(curl -fsS "$base/api/v1/auctions/$id" | sed -E 's/.*"status":"([^"]*)".*/\1/')
    [ "$status" = ended ] || fail "auction $id is $status after its close"
    fields=$(redis "$any_redis" -c hmget "auction:{$id}" state seq bid_count | tr '\n' ' ')
    read -r state seq bids <<<"$fields"
    # seq counts every change: its bids, and at most a start and an end. A second end would show.
    [ "$state" = ended ] && [ $(( seq - bids )) -le 2 ] || fail "auction $id: state $state, seq $seq with $bids bids"
    results=$(sql "SELECT COUNT(*) FROM auction_results WHERE auction_id = '$id'")
    mysql_status=$(sql "SELECT status FROM auctions WHERE auction_id = '$id'")
    [ "$results" = 1 ] && [ "$mysql_status" = ended ] || fail "auction $id in MySQL: status $mysql_status, $results results"
    # By the time Redis placed each bid (the load generator hears of it later).
    late=$(sql "SELECT COUNT(*) FROM bids b JOIN auctions a USING (auction_id) WHERE b.auction_id = '$id' AND b.placed_at >= a.end_time")
    [ "$late" = 0 ] || fail "auction $id accepted $late bids at or after its close"
done

# --- bidding came back on the dead primary's auctions ---------------------------------------------
redis_resumed="" affected_count=" $best"
for id in $affected; do
    # The bid that ended the longest silence after the kill (bids answered in the moment the node
    # took to die come before it).
    first=$(awk -v id="$id" -v t="$kill_redis" '$1 == id && $5 > t {print $5}' "$out/accepted.txt" | sort -n |
        awk -v t="$kill_redis" 'BEGIN {prev = t; gap = -1} {if ($1 - prev > gap) {gap = $1 - prev; at = $1}; prev = $1} END {if (gap >= 0) print at}')
    closes_at=$(printf '%s\n' "${closes[@]}" | awk -F: -v id="$id" '$1 == id {print $2}')
    if [ -z "$first" ]; then
        # An auction that closed before the primary came back has nothing to resume.
        if [ -n "$closes_at" ] && [ "$closes_at" -le $(( kill_redis + ${promoted_ms:-0} + 5000 )) ]; then continue; fi
        fail "no bid was accepted on auction $id after $primary was killed"
        continue
    fi
    gap=$(( first - kill_redis ))
    if [ -z "$redis_resumed" ] || [ "$gap" -gt "$redis_resumed" ]; then redis_resumed=$gap; fi
done
redis_resumed=$(seconds_or_never "$redis_resumed")

# --- figures --------------------------------------------------------------------------------------
# The longest a bidder waited, from a failure that began within a few seconds after the kill, for
# its next settled answer (the load generator's stalls).
resumed() {
    python3 -c "
import json, sys
d = json.load(sys.stdin); t = int(sys.argv[1])
s = [x['max_s'] for x in d.get('stalls', []) if t - 500 <= x['start_unix_ms'] <= t + int(sys.argv[2])]
print(f'{max(s):.1f} s ({sum(1 for x in d.get(\"stalls\", []) if t - 500 <= x[\"start_unix_ms\"] <= t + int(sys.argv[2]))} stalls)' if s else 'no stall seen')
" "$1" "$2" <<<"$report"
}
unresolved=$(field "d.get('unresolved', 0)")
echo
echo "deploy test, BID_DURABILITY=$BID_DURABILITY, ${seconds}s through nginx, $(field "d['bidders']") bidders on ${#ids[@]} auctions"
echo "  faults at: bidding node +$(( (kill_bidding - t0) / 1000 ))s, leader +$(( (kill_leader - t0) / 1000 ))s, redis primary +$(( (kill_redis - t0) / 1000 ))s, analytics cut off +24s to +34s"
echo "  bids accepted (seen by the load generator)   $accepted   (errors $(field "d['errors']"), reconnects $(field "d.get('reconnects', 0)"), unresolved $unresolved)"
echo "  bidding node killed: bidding resumed after    $(resumed "$kill_bidding" 3000)"
echo "  leader killed: another led after              $(seconds_or_never "$failover_ms") (LEADER_TTL ${leader_ttl} s)"
echo "  redis primary killed: replica promoted after  $(seconds_or_never "$promoted_ms") (cluster-node-timeout 5 s; then the dead node was started again)"
echo "                        bidding resumed after   $redis_resumed on its$affected_count auctions (longest bidder stall $(resumed "$kill_redis" 8000))"
echo "  bids lost                                     $lost"
echo "  duplicates in MySQL                           $duplicates"
echo "  closes: ${#closes[@]} auctions ended once each, none open past its close: $( [ "$failed" = 0 ] && echo yes || echo see above)"
[ "$failed" = 0 ] || { say "logs: scripts/compose.sh logs (project $COMPOSE_PROJECT_NAME) before it is removed"; compose logs --no-color --tail=100 >"$out/compose.log" 2>&1 || true; exit 1; }
say "passed"
