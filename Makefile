# The two commands a newcomer needs:
#   make run   - start Accord with the demo federation (SQLite), print its URL and admin token
#   make test  - install what the tests need and run the whole suite
SHELL := /bin/bash
UV := $(shell ./scripts/bootstrap-uv.sh)
export PATH := $(dir $(UV)):$(PATH)
HOST ?= 127.0.0.1
PORT ?= 8420

.PHONY: run serve test lint typecheck bench console

run: console
	$(UV) sync --frozen --quiet
	$(UV) run accord serve --demo --host $(HOST) --port $(PORT)

# Real use: your own YAML, your own database, no demo.
serve: console
	$(UV) sync --frozen --quiet
	$(UV) run accord serve $(if $(CONFIG),-f $(CONFIG),) --host $(HOST) --port $(PORT)

console:
	@if [ -x scripts/build-console.sh ] && command -v npm >/dev/null 2>&1; then \
		./scripts/build-console.sh; \
	else echo "npm not found: the web console is not built (the API works without it)"; fi

test:
	./scripts/test-deps.sh
	$(UV) sync --frozen --quiet
	$(UV) run pytest -W error -q

lint:
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy gateway adapters

bench:
	$(UV) run python bench/ingest.py
	$(UV) run python bench/query.py
	$(UV) run python bench/read_path.py --quick
	$(UV) run python bench/versus_tools.py --quick
