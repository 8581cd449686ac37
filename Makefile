# digitguard — `make demo` sets up and runs the main job; `make test` sets up and runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The shared byte-exact MNIST copy when it is beside the checkout; otherwise `data fetch` downloads it.
SHARED_MNIST := $(abspath ../shared/data/mnist)
export DIGITGUARD_DATA_DIR ?= $(if $(wildcard $(SHARED_MNIST)/SHA256SUMS),$(SHARED_MNIST),)

.PHONY: setup demo test lint sast pytest bench train-basic clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

data: setup
	@if [ -n "$$DIGITGUARD_DATA_DIR" ]; then $(BIN)/digitguard data verify; else $(BIN)/digitguard data fetch; fi

demo: data
	$(BIN)/digitguard verify models/basic
	$(BIN)/digitguard evaluate models/basic

test: lint sast pytest

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

sast: setup
	$(BIN)/bandit -q -r src --severity-level medium

pytest: setup
	$(BIN)/pytest -q

bench: data
	$(BIN)/python bench/train_throughput.py

# Reproduce the release model (about 20 minutes on 2 CPU cores). Needs the release key or your own:
#   make train-basic KEY=path/to/private.pem OUT=models/basic-new
KEY ?= .secrets/release-2026-11.pem
OUT ?= models/basic-retrained
train-basic: data
	$(BIN)/digitguard train --out $(OUT) --key $(KEY) --epochs 15 --seed 0

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
