# Two commands on a fresh machine: `make run` (embedded demo) and `make test` (whole suite).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: install run test lint bench migrate seed clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

## Embedded default: SQLite, tasks in-process, seeded demo chain on 127.0.0.1:$(PORT)
run: seed
	$(PY) manage.py runserver 127.0.0.1:$(PORT) --noreload

## The whole suite (PostgreSQL/Redis tests run when DATABASE_URL/REDIS_URL are set; CI=true makes them mandatory)
test: install
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check accounts api ledger checks
	$(VENV)/bin/mypy

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
