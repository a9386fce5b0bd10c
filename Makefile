# Two commands matter: `make demo` and `make test`. Each builds its own virtual environment.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean browser

demo: $(VENV)/.runtime
	$(BIN)/ptsync demo

test: $(VENV)/.dev browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Debian's Chromium for the browser tests, when this machine can install it (root with apt-get);
# elsewhere those tests skip locally (and fail under CI=true).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || true

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(VENV)/.dev
	$(BIN)/python bench/reconcile_scale.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"

# The project's own modules are compiled once here, as pip compiles an installed package's:
# an editable install is not, and where PYTHONDONTWRITEBYTECODE is set every command would
# compile them again (about 0.1 s of each `ptsync` start).
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m compileall -q worker connectors sharing
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e . --group dev
	$(BIN)/python -m compileall -q worker connectors sharing
	touch $@ $(VENV)/.runtime

clean:
	rm -rf $(VENV) ptsync.db ptsync.db-* ptsync.key ptsync-demo .pytest_cache .hypothesis
