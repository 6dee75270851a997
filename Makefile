# ethpipe — build, test and run recipes. `make help` lists them.

SHELL := /bin/bash
# Build output lives outside the checkout so fresh clones (and CI) reuse it.
CARGO_TARGET_DIR ?= $(HOME)/.cache/ethpipe-target
export CARGO_TARGET_DIR
ETHPIPE_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
export ETHPIPE_TEST_DATABASE_URL
ETHPIPE_TOOLS_DIR ?= $(HOME)/.cache/ethpipe-tools
export ETHPIPE_TOOLS_DIR

.PHONY: help build test lint unit postgres

help: ## List the recipes
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## Build the release binary ($(CARGO_TARGET_DIR)/release/ethpipe)
	cargo build --release --locked -p ethpipe

test: postgres lint unit ## Everything CI runs: PostgreSQL up, fmt, clippy, all tests

postgres: ## Start (or install) the PostgreSQL server the tests use
	@scripts/ensure-postgres.sh

.PHONY: demo
demo: ## No account needed: a local anvil chain with a few days of tokens, loaded into demo/ethpipe.db, then the dashboard
	@scripts/demo.sh

.PHONY: browser
browser: ## Install Debian's chromium and playwright-core for the dashboard's browser test
	@scripts/ensure-browser.sh

.PHONY: tools
tools: ## Install anvil and solc locally, compile the test contracts
	@scripts/ensure-node-tools.sh

lint: ## rustfmt and clippy, warnings are errors
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

unit: postgres tools browser ## The test suites (real PostgreSQL, BigQuery-compatible server)
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --locked --workspace --no-fail-fast; \
	else \
		cargo test --locked --workspace --no-fail-fast; \
	fi
