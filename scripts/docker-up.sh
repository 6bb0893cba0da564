#!/usr/bin/env bash
# `make docker-up`: builds the images offline (scripts/docker-build.sh, which reuses whatever is
# built), starts the compose deployment, and waits (up to DOCKER_UP_TIMEOUT seconds, default
# 180) until every container with a health check is healthy, the cluster maker has finished, and
# nginx answers /health and /api/v1/leader (an auction service leads). Prints how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."

timeout=${DOCKER_UP_TIMEOUT:-180}
port=${AUCTION_HTTP_PORT:-8080}
say() { printf 'docker-up: %s\n' "$*" >&2; }

started=$SECONDS
scripts/docker-build.sh
built=$SECONDS
# state ID: a container's "<status> <health, or none> <exit code>".
state() {
    docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}} {{.State.ExitCode}}' "$1"
}
# settled STATE: running and healthy, or, without a health check, exited 0 (the one-shot cluster
# maker).
settled() {
    case "$1" in
        "running healthy "* | "exited none 0") return 0 ;;
        *) return 1 ;;
    esac
}
# diagnose: which containers are not healthy, and why: the last health checks' output and the
# last log lines of each, so a failed start names its service instead of "is unhealthy".
diagnose() {
    local id name st
    scripts/compose.sh ps -a >&2 || true
    for id in $(scripts/compose.sh ps -aq 2>/dev/null); do
        st=$(state "$id" 2>/dev/null) || continue
        settled "$st" && continue
        name=$(docker inspect -f '{{.Name}}' "$id" | sed 's|^/||')
        say "$name: $st"
        docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}  health check at {{.Start}}: exit {{.ExitCode}} {{.Output}}
{{end}}{{end}}' "$id" | tail -n 8 >&2 || true
        docker logs --tail 30 "$id" 2>&1 | sed "s|^|  $name: |" >&2 || true
    done
}

say "starting the deployment"
if ! scripts/compose.sh up -d --remove-orphans; then
    diagnose
    say "error: the deployment did not start (above: each container that is not healthy, its health checks and its last log lines)"
    exit 1
fi

# ready: every container of the project has settled, and nginx serves both roles.
ready() {
    local ids id st
    ids=$(scripts/compose.sh ps -q)
    [ -n "$ids" ] || return 1
    for id in $ids; do
        st=$(state "$id") || return 1
        settled "$st" || return 1
    done
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/health" &&
        curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/api/v1/leader"
}

deadline=$((SECONDS + timeout))
until ready; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        diagnose
        say "error: the deployment was not healthy within ${timeout} s (above: each container that is not healthy, its health checks and its last log lines)"
        exit 1
    fi
    sleep 1
done
say "up on http://127.0.0.1:$port/ (images $((built - started)) s, healthy $((SECONDS - built)) s later)"
