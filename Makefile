# Quick start: `make demo` and `make test`. Each creates .venv if missing and installs sergrad.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --retries 10 --upgrade pip
	$(BIN)/python -m pip install --quiet --retries 10 --resume-retries 20 -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/sergrad demo --out demo_out

lint: $(STAMP)
	$(BIN)/ruff check sergrad defenses analysis tests
	$(BIN)/ruff format --check sergrad defenses analysis tests

test: $(STAMP) lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -x --durations=15

clean:
	rm -rf demo_out .pytest_cache
