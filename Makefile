# Two commands: `make run` (set up, then reproduce the whole pipeline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Stage commands call `python`/`dvc`: make them the virtual environment's.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := true
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install run test test-fast bench clean

install: $(VENV)/.installed

# torch first, pinned to the CPU wheel (a plain `torch` requirement would pull a multi-GB CUDA build).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# `make run PROFILE=pacgan` runs profiles/pacgan.yaml, an overlay on params.yaml, as a DVC experiment
# in a temporary workspace (`dvc exp run --temp`): params.yaml and the git tree are left as they are.
run: install
ifneq ($(PROFILE),)
	python -m pipeline profile $(PROFILE)
else
	dvc repro
endif

test: install
	python -m pytest

# Unit tests only (no Ray cluster, no dvc repro): under 2 minutes on 2 cores.
test-fast: install
	python -m pytest tests/unit -m "not integration"

bench: install
	python bench/throughput.py

clean:
	rm -rf .ray_runs mlartifacts mlflow.db
