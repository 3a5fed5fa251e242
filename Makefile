# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# A CPU build of PyTorch, installed before transformers so pip does not pull a CUDA build.
TORCH ?= torch==2.13.0

.PHONY: demo test install install-dev lint format

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(PY)
	$(PIP) install --quiet -e .

install-dev: $(PY)
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[dev,ml]"

# Demo on an embedded SQLite database with real multilingual data, at http://127.0.0.1:8000
demo: install
	DEBUG=1 $(PY) manage.py demo --serve

# The whole suite. DATABASE_URL=postgres://… runs it on PostgreSQL (concurrency tests included).
test: install-dev
	$(PY) -m pytest

# Lint: ruff's rules and mypy (with django-stubs; config in pyproject.toml) on the three apps.
lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# Format the tree as CI checks it.
format: install-dev
	$(VENV)/bin/ruff format .
