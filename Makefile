# Two entry points, each doing all of its own set-up on a machine with python3 and pip:
#   make demo   the two-stage recipe on the shipped GoEmotions sample
#   make test   the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0

.PHONY: venv demo test lint lint-imports bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# Keep a torch the user already has; otherwise take the CPU build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -q -e ".[dev,model]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) recipes/two_stage.py configs/goemotions_demo.yaml

test: venv
	$(PY) -m pytest -q tests

lint: venv
	$(VENV)/bin/ruff check src tests recipes benchmarks

# The layer and no-cycle contracts of [tool.importlinter] in pyproject.toml.
lint-imports: venv
	$(VENV)/bin/lint-imports

bench: venv
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info
