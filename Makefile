# The two commands of the README: `make demo` and `make test`. Everything goes into ./.venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test lint pytest demo demo-model bench clean

# torch is installed first and pinned: this version has a CPU build on this machine's package index,
# and a looser pin would pull gigabytes of CUDA packages.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest: install
	$(BIN)/python -m pytest

test: lint pytest

demo: install
	test -f models/demo/model/config.json || $(MAKE) demo-model
	@echo "mmv is installed in $(VENV). The app (streamlit run app) and its bank arrive with the app issue;"
	@echo "the demo model is in models/demo/model (docs/results.md). The model presets:"
	$(BIN)/mmv-models

# The demo model: the toy world (generated once, 2000 clips) and tiny_fac trained on it into models/demo
# (model/ is the exported checkpoint); rerunning resumes. `make demo` runs it when models/demo/model is missing.
demo-model: install
	test -f models/toyworld/manifest.parquet || $(BIN)/python -m training.make_toyworld --out models/toyworld --clips 2000 --seed 0
	$(BIN)/python -m training.main --config training/configs/demo_cpu.yaml --resume latest

bench: install
	$(BIN)/python benchmarks/backbones.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
