# Tasks API. `make run` serves on 127.0.0.1:8000; `make test` runs the suite on SQLite and PostgreSQL.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := backend/.venv
BIN := $(CURDIR)/$(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# `make token USER=bob`; the USER every shell exports is not taken for it.
TOKEN_USER := $(if $(filter command line,$(origin USER)),$(USER),alice)

.PHONY: run serve test e2e bench lint format migrate check-migrations openapi token install install-dev clean

$(VENV)/.runtime: backend/requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "Python 3.11 is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r backend/requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime backend/requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r backend/requirements-dev.txt
	touch $@

$(VENV)/.bench: $(VENV)/.runtime backend/requirements-bench.txt
	$(BIN)/python -m pip install --quiet -r backend/requirements-bench.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

backend/.env: | $(VENV)/.runtime
	cd backend && $(BIN)/python -m src.cli init-env

## run: migrate the database, then serve the API on http://$(HOST):$(PORT) (docs at /docs)
run: $(VENV)/.runtime backend/.env migrate
	cd backend && $(BIN)/uvicorn src.main:create_app --factory --host $(HOST) --port $(PORT) --no-access-log

## serve: production mode: WEB_CONCURRENCY uvicorn workers, proxy headers from FORWARDED_ALLOW_IPS only
serve: $(VENV)/.runtime
	cd backend && ENVIRONMENT=production $(BIN)/python -m src.cli serve --host $(HOST) --port $(PORT)

## test: the whole suite, against SQLite and PostgreSQL (TEST_DATABASE_URL, default the local server)
test: $(VENV)/.dev
	cd backend && $(BIN)/pytest -m "not browser"

## e2e: /docs and /redoc in headless Chromium (installs Debian's chromium when it is missing)
e2e: $(VENV)/.dev
	@command -v chromium >/dev/null || { echo "installing Debian's chromium"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }
	cd backend && $(BIN)/pytest -m browser tests/e2e

## bench: the service against a bare ASGI baseline with wrk, then list latency up to 1M tasks (BENCH_ARGS=...)
bench: $(VENV)/.bench
	@command -v wrk >/dev/null || { echo "wrk is not installed: sudo apt-get install wrk (Debian's package)"; exit 1; }
	cd backend && $(BIN)/python -m bench.run $(BENCH_ARGS)

## openapi: regenerate backend/openapi.json, the committed API contract
openapi: $(VENV)/.runtime
	cd backend && $(BIN)/python -m src.cli openapi > openapi.json

## migrate: bring the database at DATABASE_URL (or backend/.env) to the newest schema
migrate: $(VENV)/.runtime
	cd backend && $(BIN)/alembic upgrade head

## check-migrations: fail when the models and the migrations disagree
check-migrations: $(VENV)/.dev
	cd backend && $(BIN)/alembic upgrade head && $(BIN)/alembic check

## lint: ruff, the formatter's check, mypy, and deptry (every runtime import pinned in requirements.txt, no unused pin)
lint: $(VENV)/.dev $(VENV)/.bench
	cd backend && $(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy src alembic tests bench \
		&& $(BIN)/deptry src alembic

format: $(VENV)/.dev
	cd backend && $(BIN)/ruff check --fix . && $(BIN)/ruff format .

## token: print a bearer token for USER=... (default alice), signed with backend/.env's AUTH_JWT_SECRET
token: $(VENV)/.runtime backend/.env
	@cd backend && $(BIN)/python -m src.cli token "$(TOKEN_USER)"

clean:
	rm -rf $(VENV) backend/tasks.db backend/tasks.db-wal backend/tasks.db-shm
