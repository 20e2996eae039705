# Each target creates .venv and installs fedrec on first use: torch 2.13.0 first, the CPU build from PyTorch's CPU
# index when it answers (scripts/torch_args.py), so no CUDA build is pulled; FEDREC_TORCH_INDEX=URL opts in to another.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test test-ray test-slow lint simulate bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $$($(BIN)/python scripts/torch_args.py)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: lint
	$(BIN)/pytest -q -m "not slow and not ray"

test-ray: $(STAMP)
	$(BIN)/pytest -q -m "ray and not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

simulate: $(STAMP)
	$(BIN)/fedrec simulate simulations/default.toml --out runs/default-$$(date +%Y%m%d-%H%M%S)

bench: $(STAMP)
	$(BIN)/python benchmarks/centralised.py

clean:
	rm -rf $(VENV) runs .pytest_cache
