# Set-up is part of every target: a fresh machine needs only python3 (3.10+) and make.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# CPU wheel by default (it lies on disk here); on a GPU cluster: make TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup data run test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

data: setup
	$(BIN)/ptft-ray data prepare news rotten_tomatoes health_tweets --out data

# The main job: pretrain on real news text, then fine-tuning sweeps on Rotten Tomatoes
# (from the pretrained checkpoint and from random initialisation), all on local Ray.
run: data
	$(BIN)/python jobs/main.py --out runs/main

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache
