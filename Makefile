# ges-retention: every target works on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv lint test test-fast soak demo bench schema clean

help:
	@echo "make demo   - run a retention job against the embedded GES emulator"
	@echo "make test   - create the virtualenv, install, lint, run the whole suite"
	@echo "make lint   - ruff + mypy (strict on service/)"
	@echo "make soak   - the long reliability tests"
	@echo "make bench  - benchmarks; results in bench/results/latest.json"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check service tests bench
	$(BIN)/ruff format --check service tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -m "not slow" --cov --cov-report=term

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow" -x -q

soak: $(STAMP)
	$(BIN)/pytest -m slow -v

demo: $(STAMP)
	$(BIN)/ges-retention demo

bench: $(STAMP)
	$(BIN)/python -m bench

schema: $(STAMP)
	$(BIN)/ges-retention schema > config/policy.schema.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build *.egg-info service/*.egg-info
