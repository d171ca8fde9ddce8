# The README's two commands are `make up` and `make test`; both work on a fresh Debian/Ubuntu machine
# with Python 3.11 and apt. PostgreSQL and Redis are used at the configured URLs when they answer,
# otherwise scripts/ensure-services.sh installs/starts project-local ones on loopback.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/cafeflow
REDIS_URL ?= redis://127.0.0.1:6379/0
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/cafeflow_test
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: install up test services stop-services lint bench clean lock check-lock deploy-check

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@scripts/ensure-python.sh "$(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

.env:
	@scripts/dev-env.sh > .env
	@echo "wrote .env with fresh development secrets (git-ignored)"

services:
	@DATABASE_URL="$(DATABASE_URL)" REDIS_URL="$(REDIS_URL)" scripts/ensure-services.sh

stop-services:
	@scripts/ensure-services.sh stop

up: install .env
	@scripts/dev-env.sh --missing .env >> .env
	@set -a; source .env; set +a; \
	  DATABASE_URL="$${DATABASE_URL:-$(DATABASE_URL)}" REDIS_URL="$${REDIS_URL:-$(REDIS_URL)}" scripts/ensure-services.sh && \
	  exec $(BIN)/cafeflow up

test: install
	@DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" scripts/ensure-services.sh
	@scripts/ensure-chromium.sh
	@scripts/ensure-nginx.sh
	@scripts/ensure-prometheus.sh
	TEST_DATABASE_URL="$(TEST_DATABASE_URL)" TEST_REDIS_URL="$(TEST_REDIS_URL)" $(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check services tests bench

# requirements.lock: the image's dependencies, pinned with hashes, resolved from pyproject.toml by uv
# (kept pins stay unless pyproject.toml needs others). check-lock fails when it is stale.
LOCK_ARGS := pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet

lock: install
	$(BIN)/uv pip compile $(LOCK_ARGS) -o requirements.lock

check-lock: install
	@tmp=$$(mktemp -d) && cp requirements.lock $$tmp/requirements.lock && \
	  $(BIN)/uv pip compile $(LOCK_ARGS) -o $$tmp/requirements.lock && \
	  diff <(sed 1,2d requirements.lock) <(sed 1,2d $$tmp/requirements.lock) && rm -rf $$tmp && \
	  echo "requirements.lock matches pyproject.toml" || { echo "requirements.lock is stale: run make lock"; exit 1; }

# The deploy files alone (also part of make test): kustomize overlays, compose schema, Dockerfile lint.
deploy-check: install
	TEST_DATABASE_URL="$(TEST_DATABASE_URL)" TEST_REDIS_URL="$(TEST_REDIS_URL)" $(BIN)/pytest -q tests/deploy -k "not host_run"

bench: install
	$(BIN)/python bench/e2e_throughput.py
	$(BIN)/python bench/worker_memory.py

clean:
	rm -rf $(VENV) .pytest_cache
