# Set-up is part of every target: a fresh machine needs only python3 (3.10+) and make.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# CPU wheel by default (it lies on disk here); on a GPU cluster: make TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: setup data run test bench browser clean

setup: $(VENV)/.installed

# -qq: pip's errors print, its warnings do not (on this machine 182 lines about a pip.conf index folder that does not exist)
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -qq "$(TORCH_SPEC)"
	$(BIN)/pip install -qq -e ".[test]"
	touch $@

data: setup
	$(BIN)/ptft-ray data prepare news rotten_tomatoes health_tweets minilm --out data

# The main job: task-adaptive continued pretraining of the offline MiniLM encoder on Rotten
# Tomatoes' unlabeled training text (Ray Train DDP + Ray Data), a planned Ray Tune sweep from
# the adapted model and the same sweep from MiniLM as it is, TF-IDF + LR and majority
# baselines, McNemar tests, evaluation and the HTML report, all on local Ray.
run: data
	$(BIN)/ptft-ray pipeline --config jobs/configs/pipeline_minilm_rt.yaml --out runs/main

test: setup browser
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# Headless Chromium (Debian's package) for the test that renders the run report in a real
# browser; installed where we are root with apt, otherwise that one test says it is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && \
	    apt-get install -y -q chromium >/dev/null 2>&1; }; }; } || \
	  echo "note: no chromium here; the report's browser test will be skipped"

# Every benchmark in one process tree: benchmarks/results/*.json, PNGs and BENCHMARKS.md
bench: data
	$(BIN)/python -m benchmarks

clean:
	rm -rf runs .pytest_cache
