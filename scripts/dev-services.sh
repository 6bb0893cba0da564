#!/usr/bin/env bash
# Brings up the two servers the auction system needs, Redis and MariaDB, on loopback.
#
# Idempotent: a server that already answers is left alone. A missing server is installed from the
# system's packages (Debian/Ubuntu, apt-get) and started, through its init script when there is one
# and directly otherwise (containers often have no init system). Then the database and the user the
# services use are created if they do not exist yet.
#
# Environment (defaults in brackets): REDIS_PORT [6379], MYSQL_PORT [3306], MYSQL_DATABASE [auction],
# MYSQL_USER [auction], MYSQL_PASSWORD [auction].
set -euo pipefail

REDIS_PORT=${REDIS_PORT:-6379}
MYSQL_PORT=${MYSQL_PORT:-3306}
MYSQL_DATABASE=${MYSQL_DATABASE:-auction}
MYSQL_USER=${MYSQL_USER:-auction}
MYSQL_PASSWORD=${MYSQL_PASSWORD:-auction}

say() { printf 'dev-services: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

# wait_for NAME CMD...: runs CMD until it succeeds, for up to 30 seconds.
wait_for() {
    local name=$1; shift
    for _ in $(seq 1 150); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "$name did not come up within 30 s"
}

apt_updated=""
install_packages() {
    command -v apt-get >/dev/null || die "apt-get not found: install $* with your package manager"
    if [ -z "$apt_updated" ]; then
        say "updating the package lists"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    say "installing $*"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

start_redis() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || install_packages redis-server
    if redis_up; then say "redis is up on 127.0.0.1:$REDIS_PORT"; return; fi
    if [ "$REDIS_PORT" = 6379 ] && [ -x /etc/init.d/redis-server ]; then
        $SUDO /etc/init.d/redis-server start >/dev/null 2>&1 || true
    fi
    if ! redis_up; then
        local dir=${XDG_STATE_HOME:-$HOME/.local/state}/auction-system/redis-$REDIS_PORT
        mkdir -p "$dir"
        redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes --dir "$dir" \
            --appendonly yes --logfile "$dir/redis.log" >/dev/null
    fi
    wait_for redis redis_up
    say "started redis on 127.0.0.1:$REDIS_PORT"
}

# Accepted bids live on Redis alone until the analytics service has copied them to MySQL, so
# Redis must keep every write across a restart (the services warn at start when it would not).
# A packaged Redis snapshots only; this turns on its append-only file until it next restarts.
ensure_redis_persistence() {
    local current
    current=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" CONFIG GET appendonly 2>/dev/null | tail -n 1)
    if [ "$current" = no ]; then
        if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" CONFIG SET appendonly yes 2>&1)" = OK ]; then
            say "turned on redis append-only persistence (appendonly yes)"
        else
            say "warning: could not turn on redis append-only persistence; bids not yet in MySQL would not survive a redis restart"
        fi
    fi
}

mysql_up() { mysqladmin --protocol=tcp -h 127.0.0.1 -P "$MYSQL_PORT" ping >/dev/null 2>&1; }

start_mariadb() {
    command -v mariadbd >/dev/null || command -v mysqld >/dev/null || install_packages mariadb-server
    if ! mysql_up; then
        if [ "$MYSQL_PORT" = 3306 ] && [ -x /etc/init.d/mariadb ]; then
            $SUDO /etc/init.d/mariadb start >/dev/null 2>&1 || true
        fi
        if ! mysql_up; then
            $SUDO mkdir -p /run/mysqld
            $SUDO chown mysql:mysql /run/mysqld 2>/dev/null || true
            $SUDO sh -c "nohup mysqld_safe --bind-address=127.0.0.1 --port=$MYSQL_PORT >/dev/null 2>&1 &"
        fi
        wait_for mariadb mysql_up
        say "started mariadb on 127.0.0.1:$MYSQL_PORT"
    else
        say "mariadb is up on 127.0.0.1:$MYSQL_PORT"
    fi
    # Tests create one database each, named after the main one, so the user gets every
    # database whose name starts with it.
    $SUDO mysql --protocol=socket -uroot <<SQL
CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'localhost' IDENTIFIED BY '$MYSQL_PASSWORD';
CREATE USER IF NOT EXISTS '$MYSQL_USER'@'127.0.0.1' IDENTIFIED BY '$MYSQL_PASSWORD';
GRANT ALL PRIVILEGES ON \`${MYSQL_DATABASE}%\`.* TO '$MYSQL_USER'@'localhost';
GRANT ALL PRIVILEGES ON \`${MYSQL_DATABASE}%\`.* TO '$MYSQL_USER'@'127.0.0.1';
SQL
    say "database '$MYSQL_DATABASE' and user '$MYSQL_USER' are ready"
}

start_redis
ensure_redis_persistence
start_mariadb
