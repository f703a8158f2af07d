# The two Quick start commands (see README.md) and what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean mutate

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lockcheck demo

test: $(STAMP)
	$(BIN)/python -m pytest
	$(BIN)/ruff check lockcheck tests bench
	$(BIN)/mypy lockcheck

bench: $(STAMP)
	$(BIN)/python bench/run_bench.py

# Mutation testing (not in `make test` nor CI): `make mutate`, or one module with
# `make mutate MODULES=lockcheck/report/sarif.py`. See docs/testing.md.
MODULES ?=
mutate: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,mutate]'
	$(BIN)/python -m tests.mutate $(MODULES)

clean:
	rm -rf $(VENV) build dist .cache
