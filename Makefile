# unibind: bootstrap, test and demo on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION ?= 2.13.0

.PHONY: install test demo docs lint bench clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# A CPU torch first, unless the user pre-installed their own (e.g. a CUDA build).
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -e ".[dev,offline,serve,milvus,ray,docs]"
	@# aisfx pins numpy==1.23/librosa==0.9.2, which do not resolve: its deps come from [offline].
	$(PIP) install --no-deps "aisfx==0.1.2"
	touch $@

install: $(VENV)/.installed

# Test files run in parallel, one file per worker at a time (-n auto: one worker per core).
TEST_WORKERS ?= auto

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The documentation site, offline, into site/ (the CLI reference is regenerated first).
docs: install
	$(PY) -m unibind.cli.reference docs/reference/cli.md
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/unibind demo

lint: install
	$(VENV)/bin/ruff check src tests benchmarks

bench: install
	$(PY) benchmarks/extract.py

clean:
	rm -rf $(VENV) build site *.egg-info src/*.egg-info
