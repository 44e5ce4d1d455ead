# Two entry points: `make demo` and `make test`. Both build .venv from scratch when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint bench clean

$(BIN)/lut: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[train,gpu,ray,dev]'
	touch $(BIN)/lut

install: $(BIN)/lut

demo: install
	$(BIN)/lut demo --overwrite

test: install lint
	$(BIN)/python -m pytest -q tests

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/bench_strategies.py
	$(BIN)/python bench/bench_export.py
	$(BIN)/python bench/bench_classify.py
	$(BIN)/python bench/bench_pretrain.py
	$(BIN)/python bench/bench_change.py

clean:
	rm -rf $(VENV) build *.egg-info
