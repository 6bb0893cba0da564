#!/usr/bin/env bash
# Runs a command against a stack of its own, always started from this checkout: never whatever
# already answers on a port (an old build, a development stack, another key prefix). It builds the
# services, runs them with a Redis key prefix and a MySQL database of their own (made here), with
# no config file (CONFIG_FILE=/dev/null) and no service setting from the caller's environment, on
# 127.0.0.1:8080 (bidding), 8081 (auction) and 8082 (analytics), where the README's examples look
# for them. Afterwards, whatever the command did, it stops the services, drops the database and
# deletes the prefix's keys.
#
# The command gets the stack's addresses, AUCTION_WEB_URL, AUCTION_WS_URL, AUCTION_API_URL and
# AUCTION_ANALYTICS_URL; what it takes to start another node of the same stack, STACK_BIN_DIR (the
# service binaries) and STACK_ENV_FILE (the services' whole environment, one NAME=VALUE a line,
# SERVER_PORT and INSTANCE_ID aside); and WITH_STACK=1, so that a script can tell it runs in one.
#
# Environment: BIDDING_PORT, AUCTION_PORT, ANALYTICS_PORT move the services (the README's examples
# then miss them); TEST_REDIS_ADDRESS (host:port) and TEST_MYSQL_URL (mysql://user:pass@host:port)
# point at another Redis and MySQL, as for the tests; PROFILE=release builds optimised binaries;
# STACK_SETTINGS adds service settings, space-separated NAME=VALUE pairs (ENDED_RETENTION=5s).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'with-stack: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

bidding_port=${BIDDING_PORT:-8080}
auction_port=${AUCTION_PORT:-8081}
analytics_port=${ANALYTICS_PORT:-8082}
redis_address=${TEST_REDIS_ADDRESS:-127.0.0.1:6379}
mysql_url=${TEST_MYSQL_URL:-mysql://auction:auction@127.0.0.1:3306}
[[ $redis_address =~ ^([^:]+):([0-9]+)$ ]] || die "TEST_REDIS_ADDRESS must be host:port, not $redis_address"
redis_host=${BASH_REMATCH[1]} redis_port=${BASH_REMATCH[2]}
[[ $mysql_url =~ ^mysql://([^:@/]+):([^@/]*)@([^:/]+):([0-9]+)/?$ ]] ||
    die "TEST_MYSQL_URL must be mysql://user:password@host:port, not $mysql_url"
mysql_user=${BASH_REMATCH[1]} mysql_password=${BASH_REMATCH[2]}
mysql_host=${BASH_REMATCH[3]} mysql_port=${BASH_REMATCH[4]}
mysql_url=${mysql_url%/}

# The ports must be free: a stack already there would answer the command in place of this one.
# Both loopback addresses count, since "localhost" in the examples may reach either.
for port in "$bidding_port" "$auction_port" "$analytics_port"; do
    for host in 127.0.0.1 ::1; do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
            die "port $port is in use on $host (another stack? scripts/dev.sh? 'ss -ltnp sport = :$port' says what). \
This script starts its own stack from this checkout and needs 8080, 8081 and 8082 free, the ports the README's examples use."
        fi
    done
done

profile=${PROFILE:-debug}
say "building the services ($profile)"
if [ "$profile" = release ]; then
    cargo build --locked --release -p auction-server --bins
else
    # The very build `cargo test --workspace` makes (the service binaries with the features the
    # tests unify), so right after scripts/test.sh's tests it costs nothing; `cargo build` would
    # resolve other features and rebuild much of the tree.
    cargo test --locked --workspace --no-run -q
fi
bin_dir=$(cd "${CARGO_TARGET_DIR:-target}/$profile" && pwd)

tag=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
prefix="stack_$tag:"
database="auction_stack_$tag"
dir=$(mktemp -d)
pids=()

mysql_do() {
    MYSQL_PWD=$mysql_password mysql --protocol=tcp -h "$mysql_host" -P "$mysql_port" -u "$mysql_user" -e "$1"
}

# Stops what this script started and removes what it made, on any exit; the services' logs are
# shown when something failed.
cleanup() {
    local status=$?
    trap - EXIT
    if [ ${#pids[@]} -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "${pids[@]}" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "${pids[@]}" 2>/dev/null; then
            say "a service did not stop within 10 s of SIGTERM; killing it"
            kill -KILL "${pids[@]}" 2>/dev/null || true
        fi
        wait "${pids[@]}" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ]; then
        for log in "$dir"/*.log; do
            [ -e "$log" ] || continue
            say "the last lines of $(basename "$log"):"
            tail -n 40 "$log" >&2
        done
    fi
    mysql_do "DROP DATABASE IF EXISTS \`$database\`" || say "could not drop the database $database"
    redis-cli -h "$redis_host" -p "$redis_port" --scan --pattern "${prefix}*" |
        xargs -r -d '\n' -n 100 redis-cli -h "$redis_host" -p "$redis_port" UNLINK >/dev/null ||
        say "could not delete the keys under $prefix"
    rm -rf "$dir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mysql_do "CREATE DATABASE \`$database\`" || die "cannot create a database on $mysql_host:$mysql_port (run scripts/dev-services.sh)"
env_file="$dir/service.env"
cat >"$env_file" <<ENV
SERVER_HOST=127.0.0.1
REDIS_ADDRESS=$redis_address
REDIS_KEY_PREFIX=$prefix
MYSQL_DSN=$mysql_url/$database
CONFIG_FILE=/dev/null
LOG_LEVEL=info
NO_COLOR=1
ENV
for setting in ${STACK_SETTINGS:-}; do
    [[ $setting == *=* ]] || die "STACK_SETTINGS takes NAME=VALUE pairs, not $setting"
    printf '%s\n' "$setting" >>"$env_file"
done
mapfile -t service_env <"$env_file"

# start NAME PORT: runs one service with exactly the stack's environment, nothing inherited.
start() {
    env -i PATH="$PATH" HOME="$HOME" "${service_env[@]}" SERVER_PORT="$2" INSTANCE_ID="stack-$tag-$1" \
        "$bin_dir/$1" >"$dir/$1.log" 2>&1 &
    pids+=("$!")
}

# wait_healthy NAME PORT: waits up to 30 s until this stack's own service answers on PORT.
wait_healthy() {
    for _ in $(seq 1 150); do
        if curl -sf "http://127.0.0.1:$2/health" 2>/dev/null | grep -q "\"stack-$tag-$1\""; then return 0; fi
        kill -0 "${pids[-1]}" 2>/dev/null || die "$1 stopped before it answered"
        sleep 0.2
    done
    die "$1 did not answer on port $2 within 30 s"
}

say "starting the stack: key prefix $prefix, database $database"
# The auction service first: it applies the database migrations.
start auction-service "$auction_port"
wait_healthy auction-service "$auction_port"
start bidding-service "$bidding_port"
wait_healthy bidding-service "$bidding_port"
start analytics-service "$analytics_port"
wait_healthy analytics-service "$analytics_port"

export AUCTION_WEB_URL="http://127.0.0.1:$bidding_port"
export AUCTION_WS_URL="ws://127.0.0.1:$bidding_port"
export AUCTION_API_URL="http://127.0.0.1:$auction_port"
export AUCTION_ANALYTICS_URL="http://127.0.0.1:$analytics_port"
export STACK_BIN_DIR="$bin_dir" STACK_ENV_FILE="$env_file" WITH_STACK=1
set +e
"$@"
status=$?
set -e
exit "$status"
