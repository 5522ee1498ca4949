# Every target creates or updates .venv itself: on a fresh machine `make demo` and `make test` are all
# the set-up there is.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/migwatch demo

lint: venv
	$(BIN)/ruff check daemon tests bench tools
	$(BIN)/ruff format --check daemon tests bench tools
	$(BIN)/mypy

test: venv
	bash tools/system-deps.sh
	$(MAKE) --no-print-directory lint
	$(BIN)/pytest

bench: venv
	bash tools/system-deps.sh
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
