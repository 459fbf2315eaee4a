# midiml: `make repro` runs the pipeline, `make test` the tests; both set up .venv first.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup lock repro small demo test lint params bench bench-train bench-pipeline tune-classifier mlflow-ui clean

setup: $(STAMP)

# torch is pinned and installed first so nothing pulls a multi-GB CUDA wheel.
# constraints.txt pins every other package, so two installs give the same metrics.
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

lock: setup         ## re-pin constraints.txt to what .venv has now (after changing pyproject.toml)
	( echo "# Exact versions \`make setup\` installs (regenerate with \`make lock\`); torch is pinned in pyproject.toml."; \
	  $(BIN)/pip freeze --exclude-editable | grep -v '^torch==' ) > constraints.txt

repro: setup        ## the whole pipeline on the full data (set MIDIML_MIRROR for the offline mirror)
	$(BIN)/dvc repro

small: setup        ## the small-data pipeline (12 files per genre, few epochs)
	$(BIN)/dvc exp run -S data=small

demo: setup         ## offline: three genres from the corpus inside music21, no download
	$(BIN)/dvc exp run -S data=corpus

test: setup
	$(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check $(wildcard src stages tests benchmarks)
	$(BIN)/ruff format --check $(wildcard src stages tests benchmarks)

params: setup       ## rewrite params.yaml as the composition of conf/ defaults
	$(BIN)/python -m midiml.params_sync

bench: setup        ## speed benchmarks -> reports/metrics/benchmarks.json (SIZES: synthetic collection sizes)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/scale.py --sizes $(SIZES)
	$(BIN)/python benchmarks/continue_speed.py   # needs the trained generators (after make repro)

SIZES ?= 1000,5000,20000,50000
TRAINER ?= cpu
bench-train: setup  ## generator training times on TRAINER=cpu|gpu (after the pipeline) -> benchmarks.json
	$(BIN)/python benchmarks/train_generators.py --trainer $(TRAINER)

bench-pipeline: setup  ## every stage re-run (dvc repro -f), timed stage by stage -> benchmarks.json
	$(BIN)/python benchmarks/pipeline_time.py

ARGS ?=
# one classifier experiment: make tune-classifier ARGS='-S classifier.models.svm.grid.C=[1.0,3.0]'
# reruns that model's stage, the selection and the evaluation only (docs/classifiers.md)
tune-classifier: setup  ## dvc exp run of the classifier stages with ARGS, then dvc exp show
	$(BIN)/dvc exp run $(ARGS) evaluate_classifiers
	$(BIN)/dvc exp show --only-changed --md

PORT ?= 5000
mlflow-ui: setup    ## mlflow ui on mlflow.db; prints (and opens) each experiment's runs table
	$(BIN)/python -m midiml.tracking --port $(PORT)

clean:
	rm -rf data models mlflow.db mlartifacts
