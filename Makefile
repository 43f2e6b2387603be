# One-command set-up: `make demo` and `make test` work from a clean clone.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format clean bench bench-anchors docs

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[cli,dev,datasets,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/losslab compare --out losslab-compare

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

# The documentation site (mkdocs-material + mkdocstrings), built strictly into site/.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples docs/_hooks.py docs/_griffe_rst.py
	$(VENV)/bin/ruff format --check src tests benchmarks examples docs/_hooks.py docs/_griffe_rst.py
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks examples
	$(VENV)/bin/ruff check --fix src tests benchmarks examples

clean:
	rm -rf $(VENV) $(ANCHORS) site build dist .pytest_cache .mypy_cache .ruff_cache

# Benchmarks print ratios against baselines run in the same process and write
# benchmarks/RESULTS.md. They use .venv-anchors (torchvision, MONAI, smp, allRank) when
# `make bench-anchors` has built it; otherwise the anchor rows are skipped.
ANCHORS := .venv-anchors
ANCHORS_STAMP := $(ANCHORS)/.installed

bench: $(STAMP)
	@if test -f $(ANCHORS_STAMP); then $(ANCHORS)/bin/python benchmarks/run_all.py; \
	else $(PY) benchmarks/run_all.py; fi

$(ANCHORS_STAMP): benchmarks/requirements-anchors.txt pyproject.toml
	test -x $(ANCHORS)/bin/python || $(PYTHON) -m venv $(ANCHORS)
	$(ANCHORS)/bin/python -m pip install --quiet --upgrade pip
	$(ANCHORS)/bin/python -m pip install --quiet -r benchmarks/requirements-anchors.txt
	$(ANCHORS)/bin/python -m pip install --quiet --no-deps "allRank==1.4.3"
	$(ANCHORS)/bin/python -m pip install --quiet -e .
	touch $(ANCHORS_STAMP)

bench-anchors: $(STAMP) $(ANCHORS_STAMP)
	$(ANCHORS)/bin/python benchmarks/run_all.py
