# Two commands: `make run` (set up, then reproduce the whole pipeline) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
# Every package of the environment (runtime + dev), pinned with sha256 hashes: see `make lock`.
LOCK := requirements.lock
# torch's CPU build is on PyTorch's index, not on PyPI (PyPI's torch is the CUDA build, GBs of nvidia-*).
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
# Stage commands call `python`/`dvc`: make them the virtual environment's.
export PATH := $(BIN):$(PATH)
export DVC_NO_ANALYTICS := true
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: install lock run ui test test-fast bench clean

install: $(VENV)/.installed

# Exactly the lock's versions, each file checked against its hash; the project itself adds nothing
# (--no-deps), and `pip check` proves the lock complete. torch is installed first, alone, with
# PyTorch's index: pip asks every index for every package, and the other ~185 need only PyPI.
$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (requirements.lock is for it; make PYTHON=python3.11), found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==26.3
	sed -n '/^torch==/,/^[^ ]/{/^torch==/p;/^ /p}' $(LOCK) > $(VENV)/torch.lock
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(VENV)/torch.lock --extra-index-url $(TORCH_INDEX)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $@

# Rewrites requirements.lock from pyproject.toml (dependencies + the dev extra) for CPython 3.11 on
# Linux x86_64, the Python of Ray's py311 images. Pins already in the lock are kept; only what
# pyproject.toml's changes require moves (`make lock UPGRADE=1` moves everything to the newest
# allowed). TORCH_LINKS: where uv finds the torch CPU wheel (PyTorch's page; a wheel folder offline).
TORCH_PIN := torch==2.13.0+cpu
TORCH_LINKS ?= $(TORCH_INDEX)/torch/
UV_VENV := /tmp/gan-lab-uv
lock:
	test -x $(UV_VENV)/bin/uv || { $(PYTHON) -m venv $(UV_VENV) && $(UV_VENV)/bin/pip install --quiet uv==0.13.9; }
	echo "$(TORCH_PIN)" | $(UV_VENV)/bin/uv pip compile pyproject.toml - --extra dev --generate-hashes \
	    --python-version 3.11 --python-platform x86_64-manylinux_2_28 --index-url https://pypi.org/simple \
	    --find-links $(TORCH_LINKS) $(if $(UPGRADE),--upgrade) --no-header --quiet -o $(LOCK)
	{ printf '%s\n' \
	    '# Every package of gan-lab (pyproject.toml dependencies + the dev extra), pinned with sha256 hashes,' \
	    '# for CPython 3.11 on Linux x86_64. Made by `make lock`, which keeps the pins already here and runs' \
	    '#   echo $(TORCH_PIN) | uv pip compile pyproject.toml - --extra dev --generate-hashes --python-version 3.11' \
	    '#     --python-platform x86_64-manylinux_2_28 --index-url https://pypi.org/simple --find-links <torch CPU wheels>' \
	    '# torch is the CPU build, from $(TORCH_INDEX) (PyPI has only the CUDA one): no nvidia-* packages.' \
	    '# `make install` runs pip install --require-hashes -r requirements.lock (torch first, with that index).'; \
	  cat $(LOCK); } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

# `make run PROFILE=pacgan` runs profiles/pacgan.yaml, an overlay on params.yaml, as a DVC experiment
# in a temporary workspace (`dvc exp run --temp`): params.yaml and the git tree are left as they are.
# Both start one local Ray head on loopback that every stage joins (pipeline/train/local_cluster.py).
run: install
ifneq ($(PROFILE),)
	python -m pipeline profile $(PROFILE)
else
	python -m pipeline repro
endif

# `mlflow ui` on 127.0.0.1:5000 (PORT=...) over mlflow.db; it prints the address of the runs table.
ui: install
	python -m pipeline ui --port $(or $(PORT),5000)

test: install
	python -m pytest

# Unit tests only (no Ray cluster, no dvc repro, none of the slow ones): under 2 minutes on 2 cores.
test-fast: install
	python -m pytest tests/unit -m "not integration and not slow"

bench: install
	python bench/throughput.py

clean:
	rm -rf .ray_runs mlartifacts mlflow.db
