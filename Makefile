# Quick start: `make demo` and `make test`. Each creates .venv if missing and installs sergrad
# from requirements.lock (every package pinned; torch and torchaudio as an ABI-matched pair).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip install --quiet --retries 10 --resume-retries 20

.PHONY: demo test lint install check-install lock clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --retries 10 --upgrade pip
	$(PIP) -r requirements.lock
	$(PIP) --no-deps --no-build-isolation -e . || $(PIP) --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

check-install: $(STAMP)
	$(BIN)/python -m sergrad.install_check

demo: check-install
	$(BIN)/sergrad demo --out demo_out

lint: $(STAMP)
	$(BIN)/ruff check sergrad defenses analysis tests
	$(BIN)/ruff format --check sergrad defenses analysis tests

test: check-install lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -x --durations=15

# Regenerate requirements.lock from pyproject.toml (Linux x86_64, Python 3.11) with uv from PyPI.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --no-header -o requirements.lock

clean:
	rm -rf demo_out .pytest_cache
