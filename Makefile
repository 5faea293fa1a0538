# hub — developer entry points. `make` (or `make help`) lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
# The virtualenv; .ci/run points this at its own fresh one (VENV=.ci-venv).
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Everything after `pytest` in `make test`, e.g. `make test PYTEST_ARGS='-x -k webhook'`.
PYTEST_ARGS ?= -n 2 -q
# Everything after `python -m bench.run`, e.g. `make bench BENCH_ARGS='--quick --only latency'`.
BENCH_ARGS ?=
# The tests create their own throwaway databases from this one.
export HUB_TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: help install run test lint fmt migrate worker bench clean services browser

help: ## Show this list of targets
	@echo "Usage: make <target>"
	@echo
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@echo "Variables: VENV=$(VENV) PYTHON=$(PYTHON) PYTEST_ARGS='$(PYTEST_ARGS)'"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installed whenever pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create .venv if missing (or VENV=...), pip install -e ".[dev]"
	@echo "hub is installed in $(VENV)"

run: $(STAMP) ## Run the hub for development (`hub dev`: embedded PostgreSQL under .hub/, demo key)
	$(BIN)/hub dev

test: $(STAMP) services ## Ensure services, then pytest -n 2 -q (override: PYTEST_ARGS=...)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check, ruff format --check and mypy
	$(BIN)/ruff check --extend-exclude '$(VENV)' .
	$(BIN)/ruff format --check --extend-exclude '$(VENV)' .
	$(BIN)/mypy

fmt: $(STAMP) ## Format the code and apply ruff's safe fixes
	$(BIN)/ruff check --fix --extend-exclude '$(VENV)' .
	$(BIN)/ruff format --extend-exclude '$(VENV)' .

migrate: $(STAMP) ## Apply the database migrations (HUB_DATABASE_URL, else the embedded server)
	$(BIN)/hub migrate

worker: $(STAMP) ## Run a dispatcher-only process (`hub worker`)
	$(BIN)/hub worker

bench: $(STAMP) ## Run the benchmark (PostgreSQL + real hub processes; BENCH_ARGS=--quick for a smoke run)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

services: ## Make sure PostgreSQL and RabbitMQ (with STOMP) are up (.ci/services.sh)
	bash .ci/services.sh

browser: ## Install Debian's chromium for the console's browser tests (needs root; skipped if present)
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium)

clean: ## Stop the embedded PostgreSQL, remove .hub/ (its data!) and caches; keeps the virtualenvs
	@pidfile=.hub/pgdata/postmaster.pid; \
	if [ -f "$$pidfile" ]; then \
		pid=$$(head -1 "$$pidfile"); \
		if [ "$$(ps -p "$$pid" -o comm= 2>/dev/null)" = postgres ]; then \
			echo "stopping the embedded PostgreSQL (pid $$pid)"; \
			kill -INT "$$pid"; \
			for _ in $$(seq 20); do kill -0 "$$pid" 2>/dev/null || break; sleep 0.5; done; \
		fi; \
	fi
	rm -rf .hub .pytest_cache .mypy_cache .ruff_cache build dist
	find . \( -path ./.venv -o -path ./.ci-venv -o -path ./.git -o -path './$(VENV)' \) -prune -o \
		\( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0 rm -rf
