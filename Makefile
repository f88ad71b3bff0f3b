# Developer entry points. `make` alone lists them.
# Everything real lives in scripts/; see README.md and docs/configuration.md.

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help run test bench build fmt lint migrate sqlx-prepare services-up services-down clean-state agent-checksum

help: ## List the targets
	@echo 'Inventiv Agents - make targets:'
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  %-14s %s\n", $$1, $$2 }'

run: ## Start PostgreSQL/Redis if needed, build, run API + orchestrator (Ctrl-C stops all)
	@scripts/run.sh

test: ## All checks: fmt, clippy, cargo test (PostgreSQL/Redis), make run smoke test, compose file, agent pytest, dashboard build + tests + browser test
	@scripts/test.sh

bench: ## Benchmarks (release builds): mock engine req/s on 1 core, proxy, prefix-aware routing, deploy→ready time, heartbeat load
	@scripts/bench.sh

build: ## Build every workspace crate (debug)
	$(CARGO) build --workspace

fmt: ## Format the Rust code
	$(CARGO) fmt --all

lint: ## Clippy on everything, warnings are errors
	$(CARGO) clippy --workspace --all-targets -- -D warnings

migrate: ## Apply the SQL migrations to DATABASE_URL (or the private PostgreSQL)
	@scripts/migrate.sh

sqlx-prepare: ## Rewrite .sqlx/ (checked queries' metadata) against the migrated schema; commit it
	@scripts/sqlx-prepare.sh

services-up: ## Start the private PostgreSQL/Redis; prints the export lines
	@scripts/services.sh up

services-down: ## Stop the private PostgreSQL/Redis (data is kept)
	@scripts/services.sh down

agent-checksum: ## Build the worker agent bundle (target/agent/) and print its sha256
	@scripts/agent-bundle.sh

clean-state: ## Stop the private services and delete all local state (.local)
	@INVENTIV_STATE_DIR="$${INVENTIV_TEST_STATE_DIR:-.local/test}" INVENTIV_SKIP_DOTENV=1 scripts/services.sh purge
	@scripts/services.sh purge
	@rmdir .local 2>/dev/null || true
