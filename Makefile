# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint docs docs-serve install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: a bare `torch` would resolve to a multi-GB CUDA build.
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/initlab reproduce

# Everything, slow tests included (the README's command), on two worker processes (pytest-xdist).
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

# The quick tier: every test not marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

# ruff (lint) and mypy (types), as configured in pyproject.toml; pre-commit runs the same.
lint: $(STAMP)
	$(BIN)/ruff check src tests bench docs/hooks
	$(BIN)/mypy

# The documentation site (mkdocs.yml, docs/): built into site/, warnings are errors.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

bench: $(STAMP)
	# peers measured side by side (anyinit), never runtime dependencies
	$(BIN)/pip install --disable-pip-version-check -q -r bench/requirements.txt
	$(BIN)/python bench/sweep_bench.py
	$(BIN)/python bench/sweep_bench.py --e2e 5000 --ray
	$(BIN)/python bench/monitor_bench.py
	$(BIN)/python bench/lab_bench.py
	$(BIN)/python bench/batched_agreement_bench.py
	$(BIN)/python bench/symmetry_bench.py
	$(BIN)/python bench/autoinit_bench.py --quick

clean:
	rm -rf $(VENV) initlab-out .pytest_cache site
