# The compose deployment's own Redis, MariaDB and nginx, as one image built on the same Debian
# base as the services (`BASE_IMAGE`: the local debootstrap base, or debian:bookworm-slim where a
# registry is reachable). Debian's packages, so the versions are bookworm's (Redis 7.0, MariaDB
# 10.11, nginx 1.22); each compose service runs one of them with its own command.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="auction-infra" \
      org.opencontainers.image.description="Redis, MariaDB and nginx for the auction system's compose deployment"
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates curl redis-server redis-tools mariadb-server mariadb-client nginx-light \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o mysql -g mysql /run/mysqld
