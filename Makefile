# The two commands of the README: `make demo` and `make test`. Everything goes into ./.venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test lint pytest demo demo-model paper bench clean e2e-browser

# torch is installed first and pinned: this version has a CPU build on this machine's package index,
# and a looser pin would pull gigabytes of CUDA packages.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -c "$$WARM_MAPS"
	touch $(STAMP)

# UMAP (numba) compiles its kernels on first use and caches them in the venv: compiling them here, at install, on
# random data of both code paths (exact neighbours under 4096 points, NN-descent above), takes that cost out of
# the first bank build (make demo on a fresh clone).
define WARM_MAPS
import numpy as np
from mmv.bank.project import fit_map
for n in (300, 4200):
    x = np.random.default_rng(0).standard_normal((n, 32)).astype(np.float32)
    fit_map(x / np.linalg.norm(x, axis=1, keepdims=True), seed=0)
print("UMAP kernels compiled and cached")
endef
export WARM_MAPS

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest: install e2e-browser
	$(BIN)/python -m pytest

# The browser tests (tests/e2e) drive Debian's Chromium through Playwright (no browser download). Installing
# it needs root and the Debian archive; where that fails the e2e tests skip and say why.
e2e-browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "Chromium could not be installed (apt-get install chromium): the e2e tests will skip."

test: lint pytest

# The demo: the shipped demo model (data_samples/demo_model, committed: nothing is trained), the toy world it was
# trained on (generated when missing, ~45 s), its embedding bank (built when missing or older than the model,
# ~30 s), then the app on http://localhost:8501 (Ctrl-C stops it).
DEMO_MODEL ?= data_samples/demo_model
DEMO_BANK  ?= models/demo/bank
DEMO_PORT  ?= 8501
DEMO_RUN   ?= models/demo
TOYWORLD   := models/toyworld/manifest.parquet

demo: install
	@test -f $(DEMO_MODEL)/config.json || { echo "no model in $(DEMO_MODEL): 'make demo-model' trains one"; exit 1; }
	$(MAKE) $(DEMO_BANK)/provenance.json
	@echo "mmv explorer: http://localhost:$(DEMO_PORT) (Ctrl-C stops it)"
	MMV_APP_MODEL=$(DEMO_MODEL) MMV_APP_BANK=$(DEMO_BANK) $(BIN)/streamlit run app --server.port $(DEMO_PORT)

$(TOYWORLD):
	$(BIN)/python -m training.make_toyworld --out models/toyworld --clips 2000 --seed 0

$(DEMO_BANK)/provenance.json: $(DEMO_MODEL)/model.safetensors | $(TOYWORLD)
	$(BIN)/python -m training.build_bank --checkpoint $(DEMO_MODEL) --manifest $(TOYWORLD) --out $(DEMO_BANK)

# Rebuilds the shipped demo model: tiny_fac trained on the toy world into $(DEMO_RUN) (about 25 minutes on 2 CPU
# cores; rerunning resumes), then published into data_samples/demo_model with its test metrics and command
# (training.publish_demo). Commit that folder to ship it.
demo-model: install $(TOYWORLD)
	$(BIN)/python -m training.main --config training/configs/demo_cpu.yaml --run_dir $(DEMO_RUN) --resume latest
	$(BIN)/python -m training.publish_demo --run $(DEMO_RUN) --manifest $(TOYWORLD) --out data_samples/demo_model

# The paper's claims at toy scale: 6 ablations x 3 seeds of 500 steps on the toy world (generated when missing),
# about 30 minutes on 2 CPU cores; prints the table and writes it into docs/results.md (training/paper.py).
paper: install
	$(BIN)/python -m training.paper

bench: install
	$(BIN)/python benchmarks/backbones.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
