# ges-retention: every target works on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make demo` needs the runtime only: the locked dependencies (requirements.lock) and the package, no test extra.
RUNTIME_STAMP := $(VENV)/.installed-runtime
LOCK   := requirements.lock
# Tests, bench and tools: pyproject's mypy settings, except that a test function need not be annotated (its body is
# still checked). tests/ges and tests/support are packages, checked with the top of tests/.
MYPY_TESTS := $(BIN)/mypy --explicit-package-bases --allow-untyped-defs \
	--allow-incomplete-defs --allow-untyped-decorators --check-untyped-defs
MYPY_TEST_FOLDERS = $(filter-out tests/ges tests/support,$(patsubst %/,%,$(wildcard tests/*/)))

.PHONY: help venv lint test test-fast soak demo bench schema lock promtool man deploy-generated clean

help:
	@echo "make demo   - run a retention job against the embedded GES emulator"
	@echo "make test   - create the virtualenv, install, lint, run the whole suite"
	@echo "make lint   - ruff + mypy (strict on service/; tests, bench, tools too)"
	@echo "make soak   - the long reliability tests"
	@echo "make bench  - benchmarks; results in bench/results/latest.json"
	@echo "make promtool - promtool check + unit tests of deploy/prometheus/alerts.yaml"
	@echo "make lock   - regenerate requirements.lock (uv, hashes) from pyproject.toml"
	@echo "make man    - write the man page docs/ges-retention.1 from the argument parser"
	@echo "make deploy-generated - regenerate the Prometheus Operator objects from deploy/prometheus/alerts.yaml"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(RUNTIME_STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(RUNTIME_STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check service tests bench tools
	$(BIN)/ruff format --check service tests bench tools
	$(BIN)/mypy
	MYPYPATH=service $(MYPY_TESTS) bench tools
	MYPYPATH=service:tests $(MYPY_TESTS) tests/conftest.py tests/subprocess_env.py tests/ges tests/support
	@# Eight conftest.py files, and tests import sibling helpers by bare name (`from daemon_helpers import ...`):
	@# one mypy run per folder, with that folder on the path, keeps the module names unique.
	@for d in $(MYPY_TEST_FOLDERS); do echo "mypy $$d"; MYPYPATH=service:tests:$$d $(MYPY_TESTS) $$d || exit 1; done

test: lint
	$(BIN)/pytest -m "not slow" --cov --cov-report=term

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow" -x -q

soak: $(STAMP)
	$(BIN)/pytest -m slow -v

demo: $(RUNTIME_STAMP)
	$(BIN)/ges-retention demo

bench: $(STAMP)
	$(BIN)/python -m bench

schema: $(STAMP)
	$(BIN)/ges-retention schema > config/policy.schema.json

# uv resolves for every platform and Python >= 3.11 at once (--universal) and records every file's hash.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet 'uv>=0.5,<1'
	$(BIN)/uv pip compile --quiet pyproject.toml --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command 'make lock' --output-file $(LOCK)

promtool: $(STAMP)
	$(BIN)/python tools/promtool_test.py

deploy-generated: $(STAMP)
	$(BIN)/python tools/prometheus_operator.py

man: $(STAMP)
	mkdir -p docs
	$(BIN)/python -m ges_retention.manpage > docs/ges-retention.1
	@echo "docs/ges-retention.1: man -l docs/ges-retention.1"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage build *.egg-info service/*.egg-info
