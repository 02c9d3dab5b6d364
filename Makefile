# One entry point per job. The README names `make demo` and `make test`; both bootstrap first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STACK_HOME ?= $(CURDIR)/.stack
PYTEST_ARGS ?=

.PHONY: help bootstrap demo demo-down demo-scaling demo-failover status lint fmt typecheck test test-unit test-integration bench-failover

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

bootstrap: ## install apt packages, .venv, Elasticsearch and Jaeger (idempotent, cached)
	@bash deploy/bootstrap.sh

demo: bootstrap ## start every backend on its demo port (KUBERNETES=1: with a cluster); Ctrl-C stops them all
	$(BIN)/controlplane stack up --foreground --home $(STACK_HOME) $(if $(filter 1 yes true,$(KUBERNETES)),--kubernetes)

demo-down: ## stop the stack started by `make demo` or `controlplane stack up` (from any terminal)
	$(BIN)/controlplane stack down --home $(STACK_HOME)

demo-scaling: ## on the running demo: inject slowness under load; the control plane adds workers
	$(BIN)/controlplane drill scaling --home $(STACK_HOME)

demo-failover: ## on the running demo: SIGKILL the Patroni member that leads; RTO, writes lost, rejoin, audit
	$(BIN)/controlplane drill crash --home $(STACK_HOME)

status: ## show each backend of the local stack, its port, health and version
	$(BIN)/controlplane stack status --home $(STACK_HOME)

lint: ## ruff (lint + format check), mypy, import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: bootstrap lint ## bootstrap, lint, then unit + integration tests against real servers
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: ## unit tests only (no servers)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: ## integration tests only (real servers)
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

bench-failover: bootstrap ## Patroni: postmaster / member SIGKILL and switchover 10x each, tuned vs default timing: RTO, writes lost, rejoin
	$(PY) -m bench.failover

.PHONY: bench-backup
bench-backup: bootstrap ## pgBackRest on a 1 GB inventory: backup / restore MB/s, PITR accuracy, archive lag under ingest, restore validation (table + JSON line)
	$(PY) -m bench.backup $(BENCH_ARGS)

# --- inventory API (app/) ------------------------------------------------------------------
# Defaults point at the demo stack (`make demo`: both Patroni members, whichever leads); any
# INVENTORY_* variable set in the environment wins (see app/README.md).
.PHONY: app-run app-worker app-traffic bench-api
APP_ENV = INVENTORY_DATABASE_URL=$${INVENTORY_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432,127.0.0.1:5433/inventory} \
	INVENTORY_REPLICA_URL=$${INVENTORY_REPLICA_URL-postgresql://postgres@127.0.0.1:5432,127.0.0.1:5433/inventory?target_session_attrs=prefer-standby} \
	INVENTORY_REDIS_URL=$${INVENTORY_REDIS_URL:-redis://127.0.0.1:6379/0}

app-run: ## run the inventory API on :8000 against the demo stack (migrates first)
	$(APP_ENV) $(PY) -m app.serve --migrate --bind 127.0.0.1:8000 --workers 2

app-worker: ## run one stream worker against the demo stack
	$(APP_ENV) $(PY) -m app.worker

app-traffic: ## send demo traffic to the API on :8000 (Ctrl-C stops)
	$(PY) -m app.traffic --url http://127.0.0.1:8000

.PHONY: bench-scaling
bench-scaling: bootstrap ## burn onset → added worker serving traffic, 3 rounds; CPU-HPA and page-alert baselines
	$(PY) -m bench.scaling $(BENCH_ARGS)

bench-api: ## inventory API (own PostgreSQL, Redis, Keycloak; tokens on): wrk maxima, vegeta p99 at 80 % and mixed load per route: table + JSON line
	$(PY) -m bench.bench_api $(BENCH_ARGS)

# --- reliability under faults --------------------------------------------------------------
.PHONY: chaos
chaos: bootstrap ## faults on real servers (Prometheus, leader, Alertmanager, Redis, workers, PostgreSQL) + API fuzzing: table + JSON line
	$(PY) -m bench.chaos $(BENCH_ARGS)

# --- control plane ---------------------------------------------------------------------------
.PHONY: bench-controlplane
bench-controlplane: bootstrap ## 1,000 and 10,000 SLOs on a real Prometheus, webhook ingestion (wrk maxima, vegeta p99 at 1,000 alerts/s), memory: table + JSON line
	$(PY) -m bench.controlplane $(BENCH_ARGS)

.PHONY: bench-gil
bench-gil: ## the webhook writer's group commit alone and beside a busy event-loop thread (GIL hand-over, default vs short switch interval): table + JSON line
	$(PY) -m bench.gil $(BENCH_ARGS)

# --- SLO rules against Sloth and Pyrra ------------------------------------------------------
.PHONY: bench-slo
bench-slo: bootstrap ## our SLO rules vs Sloth's and Pyrra's on one real Prometheus: exactness, evaluation cost (table + JSON line)
	bash deploy/build-slo-peers.sh
	$(PY) -m bench.slo_interop $(BENCH_ARGS)

# --- operator console (dashboards/) ---------------------------------------------------------
.PHONY: screenshots
screenshots: ## browser tests of the console, copying one screenshot per page to docs/screenshots
	PUBLISH_SCREENSHOTS=1 $(PY) -m pytest tests/integration/dashboards/test_console.py $(PYTEST_ARGS)

.PHONY: bench-dashboards
bench-dashboards: ## overview with 200 and 2,000 SLOs in headless Chromium: first render, refresh p95, memory (table + JSON line)
	$(PY) -m bench.dashboards $(BENCH_ARGS)
