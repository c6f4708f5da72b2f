# One entry point for people and CI. `make test` builds .venv on a fresh clone by itself.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint format typecheck bench emulator clean

demo: $(STAMP)
	$(BIN)/bizagi-etl demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,scale]'
	touch $(STAMP)

check: lint typecheck

lint: $(STAMP)
	$(BIN)/ruff check bizagi_etl dagster_project tests benchmarks
	$(BIN)/ruff format --check bizagi_etl dagster_project tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix bizagi_etl dagster_project tests benchmarks
	$(BIN)/ruff format bizagi_etl dagster_project tests benchmarks

# Two processes, each test file whole in one of them (its module fixtures start once), then
# the tests that bound wall-clock time alone, so the other process does not take their cores.
test: check
	$(BIN)/pytest -n 2 --dist loadfile -m "not slow and not timing"
	$(BIN)/pytest -m timing

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,scale,bench]"
	$(BIN)/python benchmarks/emulator_bench.py
	$(BIN)/python benchmarks/pipeline_bench.py
	$(BIN)/python benchmarks/odata_bench.py
	$(BIN)/python benchmarks/odata_bench.py --latency-ms 10 --out benchmarks/results/odata_10ms.md
	$(BIN)/python benchmarks/scale_bench.py

emulator: $(STAMP)
	$(BIN)/bizagi-etl emulator

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
