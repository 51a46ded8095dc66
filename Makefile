# One entry point for people and CI. `make run` = the whole stack locally; `make test` = every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := .cairn/stamps
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

help:
	@echo "make run    - install, start anvil, deploy, index, serve the API and dashboard (SQLite)"
	@echo "make test   - install and run every test (Solidity, Python unit/integration/property)"
	@echo "make bench  - run every benchmark and write bench/results.json"
	@echo "make lint   - ruff + mypy + lint-imports (the layer rule) + tsc (the web app)"
	@echo "make gas-snapshot - re-measure every gas scenario on anvil and rewrite contracts/gas-snapshot.json"

$(STAMP):
	@mkdir -p $(STAMP)

# --- installation (idempotent; stamps are keyed on the lock files) ---------------------------------
$(STAMP)/venv: pyproject.toml requirements.lock | $(STAMP)
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PIP) install -q --disable-pip-version-check -r requirements.lock
	@$(PIP) install -q --disable-pip-version-check --no-deps -e .
	@touch $@

$(STAMP)/npm: package.json package-lock.json | $(STAMP)
	@# `npm ci` refuses this lock: the registry here serves only the linux-x64 builds of anvil and EDR, so the
	@# other platforms' optional packages cannot be locked. `npm install --no-save` installs exactly the lock.
	@npm install --no-save --no-audit --no-fund --loglevel=error
	@touch $@

install: $(STAMP)/venv $(STAMP)/npm

# the web app (web/src, TypeScript) bundled by esbuild into the package's static folder (not committed)
WEB_BUNDLE := backend/api/static/app.js
$(WEB_BUNDLE): $(shell find web -type f 2>/dev/null) scripts/build-web.mjs package-lock.json $(STAMP)/npm
	@node scripts/build-web.mjs

build: install $(WEB_BUNDLE)
	@npx hardhat build --quiet

# --- the two commands -------------------------------------------------------------------------------
run: build
	@$(VENV)/bin/cairn dev

test: build
	@bash scripts/ensure-postgres.sh
	@bash scripts/ensure-chromium.sh
	@echo "== Solidity tests (Hardhat 3) =="
	@npx hardhat test solidity
	@echo "== lint =="
	@$(VENV)/bin/ruff check cairn indexer backend tests bench
	@$(VENV)/bin/ruff format --check -q cairn indexer backend tests bench
	@$(VENV)/bin/mypy cairn indexer backend
	@$(VENV)/bin/lint-imports --no-cache
	@tsc -p web/tsconfig.json
	@echo "== Python tests =="
	@CAIRN_TEST_POSTGRES_URL=$${CAIRN_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres} \
	  $(VENV)/bin/pytest -q -p no:cacheprovider tests

bench: build
	@bash scripts/ensure-postgres.sh
	@$(PY) -m bench

# exact gas per scenario, compared by tests/integration/test_gas_snapshot.py: rewrite it after an intended change
gas-snapshot: build
	@$(PY) -m bench.gas --update

lint: install
	@$(VENV)/bin/ruff check cairn indexer backend tests bench
	@$(VENV)/bin/ruff format --check -q cairn indexer backend tests bench
	@$(VENV)/bin/mypy cairn indexer backend
	@$(VENV)/bin/lint-imports --no-cache
	@tsc -p web/tsconfig.json

clean:
	rm -rf artifacts cache .cairn $(WEB_BUNDLE) backend/api/static/app.css

.PHONY: help install build run test bench gas-snapshot lint clean
