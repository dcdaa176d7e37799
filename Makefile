# Two entry points: `make demo` and `make test`. Both create .venv on their own.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint typecheck unit coverage mutate mutate-sample tools docs opener opener-deps bench bench-repo bench-parity bench-scale bench-system bench-recordings bench-destinations bench-copy clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[appliance]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

demo: $(VENV)/.installed
	$(BIN)/sealbox demo

tools:
	@scripts/install-tools.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# `make test COVERAGE=1` (what .ci/run does) runs the suite once, under coverage, with its gates.
unit: $(VENV)/.installed-dev tools opener-deps
ifeq ($(COVERAGE),1)
	$(MAKE) coverage
else
	$(BIN)/pytest
endif

# Branch coverage of the whole suite, counting the `sealbox` child processes (the daemon's jobs,
# the agent, the demo): pyproject.toml's [tool.coverage.*], gates in [tool.sealbox.coverage-gates].
# PYTEST_ARGS narrows the run (e.g. PYTEST_ARGS=tests/repo); the gates judge what ran.
COVERAGE_DATA := $(CURDIR)/.coverage-data
COV := COVERAGE_FILE=$(COVERAGE_DATA)/cov $(BIN)/coverage
coverage: $(VENV)/.installed-dev tools opener-deps
	rm -rf $(COVERAGE_DATA) && mkdir -p -m 1777 $(COVERAGE_DATA)  # a test runs sealbox as nobody
	$(COV) run -m pytest $(PYTEST_ARGS)
	$(COV) combine -q
	$(COV) report > $(COVERAGE_DATA)/report.txt; tail -n 3 $(COVERAGE_DATA)/report.txt
	$(COV) json -q -o $(COVERAGE_DATA)/coverage.json
	$(BIN)/python scripts/coverage_gate.py $(COVERAGE_DATA)/coverage.json

# Mutation testing with mutmut (scripts/mutate.py; docs/testing.md): every mutant of the
# safety-critical modules, group by group (GROUPS=crypto restore ... narrows it), and CI's fixed
# sample, which fails when a sampled mutant survives that docs/testing.md does not accept.
mutate: $(VENV)/.installed-dev tools opener-deps
	$(BIN)/python scripts/mutate.py $(GROUPS)

mutate-sample: $(VENV)/.installed-dev
	$(BIN)/python scripts/mutate.py --sample

# The browser opener (opener/): JavaScript dependencies exactly as the lockfile pins them (no
# install scripts run), then the one HTML file, shipped as package data (so pip needs no node).
# A test rebuilds it and compares the bytes.
opener/node_modules/.package-lock.json: opener/package-lock.json
	cd opener && npm ci --ignore-scripts --no-audit --no-fund

opener-deps: opener/node_modules/.package-lock.json

opener: opener-deps
	cd opener && node build.mjs

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

bench-copy: $(VENV)/.installed-dev
	$(BIN)/python bench/copy_bench.py

bench-repo: $(VENV)/.installed-dev
	@scripts/install-tools.sh --bench
	$(BIN)/python bench/repo_bench.py

bench-parity: $(VENV)/.installed-dev
	@scripts/install-tools.sh --bench
	$(BIN)/python bench/parity_bench.py --repo $(ARGS)

# A million files by default (generated once under bench/results/scale); ARGS="--files 100000".
bench-scale: $(VENV)/.installed-dev
	@scripts/install-tools.sh --bench
	$(BIN)/python bench/scale_bench.py $(ARGS)

clean:
	rm -rf $(VENV) sealbox-demo .pytest_cache .mypy_cache .ruff_cache opener/node_modules
