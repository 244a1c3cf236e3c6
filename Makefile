# BeastFlow: `make up` runs the service, `make test` runs the checks.
# Both set up what they need first (venv, dependencies, database); where
# DATABASE_URL / REDIS_URL are unset and nothing answers on the default
# local ports, embedded PostgreSQL and Redis start under .beastflow/.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Prefer python3.11 (what the lock file was resolved with); any 3.11+ works.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements/lock.txt
STAMP := $(VENV)/.installed
LAUNCH := $(BIN)/python -m beastflow.launch
# Extra arguments for pytest or a bench script: make test ARGS="-k ingest -x"
ARGS ?=

.PHONY: help venv up test lint fmt docs migrate worker beat bench services clean

help:
	@echo "make up        set up and run web + worker + beat until Ctrl-C"
	@echo "make test      set up, lint, type-check and run the test suite (ARGS=... for pytest)"
	@echo "make lint      ruff check, ruff format --check, mypy"
	@echo "make fmt       ruff format and ruff check --fix"
	@echo "make docs      build the documentation site into site/ (MkDocs, warnings are errors)"
	@echo "make migrate   migrate public and the tenant schemas with pending migrations"
	@echo "make worker    run a Celery worker in the foreground"
	@echo "make beat      run Celery beat in the foreground"
	@echo "make bench     run every bench/*.py (but faults, soak and web_memory)"
	@echo "make faults    kill, flush and restart each part under steady ingest; count acked, stored, lost"
	@echo "make soak      30 min at a fixed rate, RSS growth per process (ARGS=\"--minutes 5\")"
	@echo "make services  print export lines for DATABASE_URL and REDIS_URL"
	@echo "make openapi   write docs/openapi.yaml and docs/asyncapi.yaml from the code (commit them with an API change)"
	@echo "make clean     stop the embedded PostgreSQL and Redis"

venv: $(STAMP)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "BeastFlow needs Python 3.11+, found $$($(PYTHON) --version 2>&1) at $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the lock file (or the SDK's own dependencies: the lock
# installs sdk/python editable) is newer than the last install.
$(STAMP): $(LOCK) sdk/python/pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --disable-pip-version-check -r $(LOCK)
	touch $(STAMP)

up: venv
	$(LAUNCH) up

# A test database made afresh each run: state one run left (a test stopped before its
# cleanup) must not decide the next run's results. Focused runs keep --reuse-db (pyproject).
test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(LAUNCH) test -- --create-db $(ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# NO_MKDOCS_2_WARNING: mkdocs-material's banner about its successor, printed on every build.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

migrate: venv
	$(LAUNCH) migrate

worker: venv
	$(LAUNCH) worker

beat: venv
	$(LAUNCH) beat

bench: venv
	$(LAUNCH) bench -- $(ARGS)

# Fault suite and soak (docs/reliability.md): their own stack, minutes long.
.PHONY: faults soak
faults: venv
	$(LAUNCH) faults -- $(ARGS)

soak: venv
	$(LAUNCH) soak -- $(ARGS)

# The committed schemas (docs/api.md); tests/beastflow/test_openapi.py and test_asyncapi.py fail while they differ.
.PHONY: openapi
openapi: venv
	$(BIN)/python manage.py spectacular --validate --fail-on-warn --file docs/openapi.yaml
	$(BIN)/python manage.py asyncapi --file docs/asyncapi.yaml

services: venv
	@$(LAUNCH) services

# Without a venv nothing can have started an embedded server.
clean:
	@if [ -x $(BIN)/python ]; then $(LAUNCH) stop; fi
