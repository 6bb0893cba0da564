# Shortcuts; the scripts under scripts/ are the real commands and need nothing but bash and cargo.
.PHONY: dev dev-setup test bench fmt clippy run-auction-service run-bidding-service run-analytics-service \
	docker-build docker-up docker-down docker-logs

dev:                    ## the whole stack in the foreground
	scripts/dev.sh

dev-setup:              ## install (if needed) and start Redis and MariaDB
	scripts/dev-services.sh

bench:                  ## the benchmark (release build, about 12 minutes; BENCH_REDIS=cluster adds a Redis Cluster run)
	scripts/bench.sh

test:                   ## every check and test
	scripts/test.sh

fmt:
	cargo fmt --all

clippy:
	cargo clippy --workspace --all-targets -- -D warnings

run-auction-service: dev-setup
	SERVER_PORT=8081 cargo run --bin auction-service

run-bidding-service: dev-setup
	SERVER_PORT=8080 cargo run --bin bidding-service

run-analytics-service: dev-setup
	SERVER_PORT=8082 cargo run --bin analytics-service

docker-build:           ## the images, offline (a debootstrap base, host-built binaries)
	scripts/docker-build.sh

docker-up:              ## the compose deployment behind nginx on 127.0.0.1:8080, waited for until healthy
	scripts/docker-up.sh

docker-down:            ## stops the deployment and removes its containers, network and volumes
	scripts/compose.sh down --volumes --remove-orphans --timeout 20

docker-logs:            ## follows the deployment's logs
	scripts/compose.sh logs --follow --tail=200
