# Two entry points: `make demo` and `make test`. Both create .venv on their own.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit tools docs bench bench-repo bench-scale bench-system bench-recordings bench-destinations clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/sealbox demo

tools:
	@scripts/install-tools.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev tools
	$(BIN)/pytest

test: lint typecheck unit

# Regenerate the reference pages that are generated from code (a test checks they are current).
docs: $(VENV)/.installed
	$(BIN)/python -m sealbox.errors > docs/reference/exit-codes.md
	$(BIN)/python -m sealbox.config.sample --markdown > docs/reference/config.md
	$(BIN)/python -m sealbox.alerts.events > docs/reference/events.md

bench: $(VENV)/.installed-dev tools
	$(BIN)/python bench/secrets_bench.py

bench-recordings: $(VENV)/.installed-dev
	@scripts/install-tools.sh --bench
	$(BIN)/python bench/recordings_bench.py

bench-destinations: $(VENV)/.installed-dev
	@scripts/install-tools.sh --bench
	$(BIN)/python bench/destinations_bench.py

bench-system: $(VENV)/.installed-dev
	$(BIN)/python bench/system_bench.py

bench-repo: $(VENV)/.installed-dev
	@scripts/install-tools.sh --bench
	$(BIN)/python bench/repo_bench.py

# A million files by default (generated once under bench/results/scale); ARGS="--files 100000".
bench-scale: $(VENV)/.installed-dev
	@scripts/install-tools.sh --bench
	$(BIN)/python bench/scale_bench.py $(ARGS)

clean:
	rm -rf $(VENV) sealbox-demo .pytest_cache .mypy_cache .ruff_cache
