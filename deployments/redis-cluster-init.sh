#!/bin/sh
# The compose deployment's one-shot cluster maker: once the six nodes answer, makes them a
# cluster of three primaries with a replica each, unless they already are one (the nodes keep
# their cluster state in their volumes, so from the second `up` on this does nothing).
#
# `redis-cli --cluster create` takes addresses, not names (CLUSTER MEET needs an IP in Redis
# 7.0), so the names are looked up here; the nodes then tell clients their names
# (cluster-announce-hostname), not these addresses.
set -eu

NODES=${REDIS_CLUSTER_NODES:?REDIS_CLUSTER_NODES is host:port,host:port,...}
say() { printf 'redis-cluster-init: %s\n' "$*"; }

# wait_for DESCRIPTION CMD...: runs CMD every half second until it succeeds, for up to 60 s.
wait_for() {
    what=$1; shift
    i=0
    until "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -ge 120 ]; then say "gave up waiting for $what"; exit 1; fi
        sleep 0.5
    done
}

answers() { [ "$(redis-cli -h "${1%:*}" -p "${1##*:}" ping 2>/dev/null)" = PONG ]; }
assigned() { redis-cli -h "${1%:*}" -p "${1##*:}" cluster info 2>/dev/null | grep -q '^cluster_slots_assigned:16384'; }
healthy() { redis-cli -h "${1%:*}" -p "${1##*:}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

addresses=""
first=""
for node in $(echo "$NODES" | tr ',' ' '); do
    wait_for "$node" answers "$node"
    ip=$(getent hosts "${node%:*}" | awk '{ print $1; exit }')
    addresses="$addresses $ip:${node##*:}"
    first=${first:-$node}
done

if assigned "$first"; then
    say "the cluster exists already"
else
    say "creating the cluster of$addresses"
    # shellcheck disable=SC2086 # one argument per address
    redis-cli --cluster create $addresses --cluster-replicas 1 --cluster-yes
fi
for node in $(echo "$NODES" | tr ',' ' '); do
    wait_for "the cluster to be ok on $node" healthy "$node"
done
say "the cluster is ok"
