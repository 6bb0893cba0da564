#!/usr/bin/env bash
# Starts a Redis Cluster for the tests on loopback: six redis-server processes (three primaries,
# three replicas) on ports BASE..BASE+5 (BASE defaults to 7101; each node also uses port+10000 for
# the cluster bus), and joins them. Does nothing when that cluster is already up. Prints the seed
# nodes for REDIS_CLUSTER_NODES. `scripts/redis-cluster.sh stop` stops the nodes.
# REDIS_CLUSTER_DIR (default target/redis-cluster) holds their files; REDIS_CLUSTER_APPENDONLY=yes
# turns the append-only file on, as in production (the tests do without).
set -euo pipefail
cd "$(dirname "$0")/.."

base="${REDIS_CLUSTER_BASE_PORT:-7101}"
dir="${REDIS_CLUSTER_DIR:-target/redis-cluster}"
# Absolute, so that the log path is right whether the directory was given relative or not.
case "$dir" in /*) ;; *) dir="$(pwd)/$dir" ;; esac
ports=$(seq "$base" $((base + 5)))
nodes=$(for p in $ports; do printf '127.0.0.1:%s,' "$p"; done)
nodes="${nodes%,}"

if [ "${1:-}" = "stop" ]; then
    for p in $ports; do redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true; done
    exit 0
fi

command -v redis-server >/dev/null || scripts/dev-services.sh >&2

healthy() {
    redis-cli -p "$base" cluster info 2>/dev/null | grep -q '^cluster_state:ok' &&
        [ "$(redis-cli -p "$base" cluster nodes 2>/dev/null | grep -c 'connected')" -eq 6 ] &&
        [ "$(redis-cli -p "$base" cluster nodes 2>/dev/null | grep -c ' slave ')" -eq 3 ]
}

if healthy; then
    echo "$nodes"
    exit 0
fi

mkdir -p "$dir"
for p in $ports; do
    if redis-cli -p "$p" ping >/dev/null 2>&1; then continue; fi
    # A node left over from an earlier run keeps its old view of the cluster and, with the
    # append-only file, its old keys (which `cluster reset` refuses): start afresh.
    rm -rf "${dir:?}/$p"
    mkdir -p "$dir/$p"
    redis-server --port "$p" --bind 127.0.0.1 --daemonize yes --dir "$dir/$p" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --appendonly "${REDIS_CLUSTER_APPENDONLY:-no}" --save "" --logfile "$dir/$p/redis.log" >/dev/null
done
for p in $ports; do
    for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$p" ping >/dev/null
done

if ! redis-cli -p "$base" cluster info | grep -q '^cluster_state:ok'; then
    # Nodes that already know each other but do not make a cluster are reset first.
    for p in $ports; do redis-cli -p "$p" flushall >/dev/null 2>&1 || true; redis-cli -p "$p" cluster reset hard >/dev/null; done
    # shellcheck disable=SC2046
    redis-cli --cluster create $(for p in $ports; do printf '127.0.0.1:%s ' "$p"; done) \
        --cluster-replicas 1 --cluster-yes >"$dir/create.log"
fi
for _ in $(seq 100); do healthy && break; sleep 0.1; done
healthy || { echo "the test cluster did not come up (see $dir/create.log)" >&2; exit 1; }
echo "$nodes"
