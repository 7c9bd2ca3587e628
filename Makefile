# Two commands set everything up on a fresh machine (README.md, "Quick start"):
#   make dev    run the whole platform (embedded Redis + PostgreSQL, hub, NARA worker)
#   make test   lint, check the import contracts, type-check and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The server, the wire protocol and the Python SDK are three distributions of this repository.
PROJECTS := -e ./protocol -e ./clients/python

.PHONY: dev test lint contracts typecheck pytest clean web js jstest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The platform needs the runtime dependencies and, to run with nothing else installed, the
# embedded servers and ffmpeg; the tests add the dev extras.
$(VENV)/.runtime: pyproject.toml protocol/pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(PROJECTS) -e '.[embedded]'
	touch $@

$(VENV)/.dev: pyproject.toml protocol/pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(PROJECTS) -e '.[embedded,dev]'
	touch $@ $(VENV)/.runtime

dev: $(VENV)/.runtime
	$(BIN)/amaro dev

lint: $(VENV)/.dev
	$(BIN)/ruff check .

contracts: $(VENV)/.dev
	$(BIN)/lint-imports

typecheck: $(VENV)/.dev
	$(BIN)/mypy amaro protocol realtime feed media nara loadtests clients/python/amaro_client

pytest: $(VENV)/.dev
	$(BIN)/pytest -q $(PYTEST_ARGS)

test: lint contracts typecheck jstest pytest

# The browser client's packages, installed again when the lock is newer than node_modules.
JS_INSTALLED := clients/js/node_modules/.package-lock.json
$(JS_INSTALLED): clients/js/package-lock.json
	npm ci --no-audit --no-fund --prefix clients/js
	touch $@

js: $(JS_INSTALLED)

# Type-check the JSDoc and run the pure tests (codec vectors, backoff, dedupe); the tests against
# real hubs (clients/js/test/live) run from pytest, which starts the hubs.
jstest: $(JS_INSTALLED)
	clients/js/node_modules/.bin/tsc -p clients/js
	node --test clients/js/test/*.test.js

# The web app's build, committed in clients/web/dist (hub nodes serve it without a build step).
web:
	npm ci --prefix clients/js
	npm ci --prefix clients/web
	npm run --prefix clients/web build

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
