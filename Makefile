# thumbnail-ingest: `make help` lists the targets. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install run-install demo test check bench reliability clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

RUN_STAMP := $(VENV)/.run-stamp

$(RUN_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its test and lint tools

run-install: $(RUN_STAMP) ## create .venv with what running the tool needs (no test or lint tools)

demo: run-install ## generate a sample archive, start the emulator (a child process) and ingest it
	$(PY) -m pipeline demo --dir demo-output

test: install ## run the test suite (the long scenarios are marked slow and left to `make reliability`)
	$(PY) -m pytest -m "not slow" -q

check: install ## ruff and mypy --strict
	$(VENV)/bin/ruff check pipeline tests bench
	$(VENV)/bin/mypy

bench: install ## run the benchmarks; figures printed and written to bench/results/
	$(PY) -m bench

reliability: install ## the slow tier: every test marked slow (kill loops, signals, load, multi-GB stores), wherever it lives
	$(PY) -m pytest -m slow -q

clean: ## remove the venv, caches and demo output
	rm -rf $(VENV) demo-output bench/results .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
