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
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

build: ## Build the release binary ($(CARGO_TARGET_DIR)/release/ethpipe)
	cargo build --release --locked -p ethpipe

test: postgres lint chart-check unit ## Everything CI runs: PostgreSQL up, fmt, clippy, all tests

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

.PHONY: python-tools
python-tools: ## Install DuckDB's Python package in a local venv (the tests read Parquet with it)
	@scripts/ensure-python-tools.sh

lint: ## rustfmt and clippy, warnings are errors
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --all-targets -- -D warnings

unit: postgres tools python-tools browser ## The test suites (real PostgreSQL, BigQuery-compatible server)
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --locked --workspace --no-fail-fast; \
	else \
		cargo test --locked --workspace --no-fail-fast; \
	fi

.PHONY: soak
soak: postgres tools ## Chaos soak of two serve replicas, 10 minutes (SOAK_SECONDS=90 for a short run, SOAK_SEED to replay); not part of `make test`
	cargo build --locked -p ethpipe -p ethpipe-testkit --bin ethpipe --bin soak
	$(CARGO_TARGET_DIR)/debug/soak

# --- Kubernetes: minikube, the Helm chart, backfill Jobs (docs/deploy.md) ---
# One namespace variable for every command below: make kick-start NAMESPACE=dev
NAMESPACE ?= ethpipe
RELEASE ?= ethpipe
CHART := deploy/helm/ethpipe
MINIKUBE ?= minikube
MINIKUBE_PROFILE ?= minikube
MINIKUBE_CPUS ?= 4
MINIKUBE_MEMORY ?= 8g
MINIKUBE_ARGS ?=
KUBE_CONTEXT ?= $(MINIKUBE_PROFILE)
# helm and kubectl from PATH, else the pinned ones of scripts/ensure-chart-tools.sh.
HELM ?= $(if $(shell command -v helm 2>/dev/null),helm,$(ETHPIPE_TOOLS_DIR)/chart/bin/helm)
KUBECTL ?= $(if $(shell command -v kubectl 2>/dev/null),kubectl,$(ETHPIPE_TOOLS_DIR)/chart/bin/kubectl)
HELM_TIMEOUT ?= 10m
# Extra chart values: make kick-start VALUES=my-values.yaml HELM_ARGS='--set server.replicas=2'
VALUES ?=
HELM_ARGS ?=
# The source: a service-account key file (GCP_KEY=path/key.json) or a JSON-RPC
# node (RPC_URL=…). Each is stored in a Secret on first use; later runs reuse it.
GCP_KEY ?=
RPC_URL ?=
SOURCE ?= $(if $(RPC_URL),rpc,bigquery)
IMAGE_REPOSITORY ?= ethpipe
APP_VERSION = $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$$/\1/p' $(CHART)/Chart.yaml)
# A local build is tagged with the chart's appVersion and a hash of the sources:
# a changed build rolls the pods, an unchanged one leaves them alone.
SOURCE_HASH = $(shell git ls-files -z -co --exclude-standard -- Cargo.toml Cargo.lock crates Dockerfile .dockerignore 2>/dev/null | xargs -0 cat 2>/dev/null | { command -v sha256sum >/dev/null && sha256sum || shasum -a 256; } | cut -c1-12)
IMAGE_TAG ?= $(APP_VERSION)-dev.$(SOURCE_HASH)
# make backfill FROM=… TO=… [PIPELINE=…] [PARALLEL=…]
PIPELINE ?= token_transfers
PARALLEL ?= 2
FROM ?=
TO ?=
PORT ?= 6789

.PHONY: setup-k8 kick-start forward-port backfill chart-check

setup-k8: ## Start minikube (4 CPUs, 8 GB; Linux or macOS) and the namespace $(NAMESPACE)
	@command -v $(MINIKUBE) >/dev/null || { echo "error: minikube is not installed (see docs/deploy.md)" >&2; exit 1; }
	$(MINIKUBE) status --profile $(MINIKUBE_PROFILE) >/dev/null 2>&1 || $(MINIKUBE) start --profile $(MINIKUBE_PROFILE) --cpus $(MINIKUBE_CPUS) --memory $(MINIKUBE_MEMORY) $(MINIKUBE_ARGS)
	$(KUBECTL) --context $(KUBE_CONTEXT) create namespace $(NAMESPACE) --dry-run=client --output yaml | $(KUBECTL) --context $(KUBE_CONTEXT) apply --filename -
	$(KUBECTL) --context $(KUBE_CONTEXT) label --overwrite namespace $(NAMESPACE) pod-security.kubernetes.io/enforce=restricted

kick-start: setup-k8 ## Build the image into minikube, install or upgrade the chart (GCP_KEY=key.json or RPC_URL=…; safe to re-run)
	$(MINIKUBE) --profile $(MINIKUBE_PROFILE) image build --tag $(IMAGE_REPOSITORY):$(IMAGE_TAG) .
ifneq ($(strip $(GCP_KEY)),)
	$(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) create secret generic $(RELEASE)-gcp-key --from-file=key.json="$(GCP_KEY)" --dry-run=client --output yaml | $(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) apply --filename -
endif
ifneq ($(strip $(RPC_URL)),)
	$(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) create secret generic $(RELEASE)-rpc --from-literal=url="$${RPC_URL}" --dry-run=client --output yaml | $(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) apply --filename -
endif
	@$(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) get secret $(RELEASE)-$(if $(filter rpc,$(SOURCE)),rpc,gcp-key) >/dev/null 2>&1 || { echo "error: no $(SOURCE) credentials yet: run make kick-start GCP_KEY=path/to/key.json (BigQuery) or RPC_URL=https://… (a JSON-RPC node)" >&2; exit 1; }
	$(HELM) upgrade --install $(RELEASE) $(CHART) --kube-context $(KUBE_CONTEXT) --namespace $(NAMESPACE) --set fullnameOverride=$(RELEASE) --set-string image.repository=$(IMAGE_REPOSITORY),image.tag=$(IMAGE_TAG),image.pullPolicy=Never --set source.type=$(SOURCE) $(if $(filter rpc,$(SOURCE)),--set source.rpc.existingSecret=$(RELEASE)-rpc,--set gcp.existingSecret=$(RELEASE)-gcp-key) $(if $(VALUES),--values $(VALUES)) $(HELM_ARGS) --wait --timeout $(HELM_TIMEOUT)

forward-port: ## The dashboard and API on http://localhost:6789 (PORT=…), until Ctrl-C
	@echo "API token (for runs, backfills, toggles): $(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) get secret $(RELEASE)-api-token --output jsonpath='{.data.token}' | base64 --decode"
	$(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) port-forward service/$(RELEASE) $(PORT):6789

backfill: ## A backfill as an Indexed Job: FROM=YYYY-MM-DD TO=YYYY-MM-DD [PIPELINE=token_transfers] [PARALLEL=2]
	@if [ -z "$(FROM)" ] || [ -z "$(TO)" ]; then echo "usage: make backfill FROM=YYYY-MM-DD TO=YYYY-MM-DD [PIPELINE=$(PIPELINE)] [PARALLEL=$(PARALLEL)]" >&2; exit 2; fi
	$(HELM) upgrade $(RELEASE) $(CHART) --kube-context $(KUBE_CONTEXT) --namespace $(NAMESPACE) --reset-then-reuse-values --set backfill.enabled=true --set-string backfill.pipeline=$(PIPELINE),backfill.from=$(FROM),backfill.to=$(TO) --set backfill.parallelism=$(PARALLEL)
	$(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) get jobs --selector app.kubernetes.io/instance=$(RELEASE),app.kubernetes.io/component=backfill
	@echo "follow it: $(KUBECTL) --context $(KUBE_CONTEXT) --namespace $(NAMESPACE) logs --follow --prefix --selector app.kubernetes.io/instance=$(RELEASE),app.kubernetes.io/component=backfill"

chart-check: ## Helm chart checks: lint, render, kubernetes-validate, yamllint, manifest properties
	@scripts/chart-check.sh

# --- Fuzzing: cargo fuzz on the decoders, bounded (docs/reliability.md) ---
# Not part of `make test`. make fuzz FUZZ_SECONDS=300 FUZZ_TARGETS=decode_transfer
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
.PHONY: fuzz
fuzz: ## Fuzz each decoder for FUZZ_SECONDS (60) s, one at a time; installs cargo-fuzz if missing
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" scripts/fuzz.sh

# --- Benchmarks: ethpipe against psql \copy, ethereum-etl, cryo and a row-by-row upsert (bench/) ---
# Not part of `make test`. Writes bench/RESULTS.md; `make bench BENCH_ARGS=--quick` is a smoke run,
# `make bench BENCH_ARGS=load` runs one part (load, backfill, rpc, rowwise; then `report`).
BENCH_ARGS ?=
.PHONY: bench
bench: postgres tools ## Benchmarks (~25 min): loads vs psql \copy (key-only table, with history), memory, RPC vs ethereum-etl and cryo, row-by-row, SQLite; writes bench/RESULTS.md
	cargo build --release --locked -p ethpipe -p ethpipe-bench
	$(CARGO_TARGET_DIR)/release/ethpipe-bench $(BENCH_ARGS)
