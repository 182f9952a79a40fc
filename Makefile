# Every target builds the virtual environment it needs first, so `make demo` and
# `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: all demo test lint bench clean

# A bare `make` is the gate CI runs: lint, then the tests with coverage.
all: lint test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/listrak-source demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 4 --cov --cov-report=term $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check listrak_source tests bench
	$(BIN)/ruff format --check listrak_source tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.audiences $(AUDIENCE_BENCH_ARGS)
	$(BIN)/python -m bench.activity $(ACTIVITY_BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
