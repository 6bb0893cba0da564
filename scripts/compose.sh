#!/usr/bin/env bash
# Runs Docker Compose on the deployment (deployments/docker-compose.yml, project `auction`):
# Debian's docker-compose (1.29) when installed, else the compose plugin (`docker compose`).
# The arguments are compose's: `scripts/compose.sh ps`, `scripts/compose.sh logs -f bidding-1`.
#
# Environment: COMPOSE_PROJECT_NAME [auction], and the compose file's own variables
# (AUCTION_IMAGE, INFRA_IMAGE, AUCTION_HTTP_PORT, MYSQL_PASSWORD, AUTH_SECRET, ADMIN_TOKEN, LOG_LEVEL).
set -euo pipefail
cd "$(dirname "$0")/.."
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-auction}
if command -v docker-compose >/dev/null 2>&1; then
    exec docker-compose -f deployments/docker-compose.yml "$@"
fi
exec docker compose -f deployments/docker-compose.yml "$@"
