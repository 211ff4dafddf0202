# Two commands: `make run` (set up, then reproduce the whole pipeline) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# Stage commands call `python`/`dvc`: make them the virtual environment's.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := true
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install run test bench clean

install: $(VENV)/.installed

# torch first, pinned to the CPU wheel (a plain `torch` requirement would pull a multi-GB CUDA build).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# `make run PROFILE=pacgan` first replaces params.yaml with profiles/pacgan.yaml (a longer-budget
# params file; `git checkout params.yaml` returns to the default one).
run: install
ifneq ($(PROFILE),)
	@test -f profiles/$(PROFILE).yaml || { echo "PROFILE=$(PROFILE): no profiles/$(PROFILE).yaml; allowed: $$(ls profiles | sed 's/.yaml//' | tr '\n' ' ')"; exit 2; }
	cp profiles/$(PROFILE).yaml params.yaml
endif
	dvc repro

test: install
	python -m pytest

bench: install
	python bench/throughput.py

clean:
	rm -rf .ray_runs mlartifacts mlflow.db
