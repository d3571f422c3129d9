# One command per task; every target installs the environment first (a fresh clone needs nothing else).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Variables a user can set on the command line, e.g. `make friendly PRESET=thesis DEVICE=@cupy:0`.
DEVICE ?=
PRESET ?= quick
SEED   ?= 0
OUT    ?= results
DATA   ?= data
JOBS   ?= 1
# The genuine MNIST files beside the checkout, when they are there; else Chainer downloads MNIST.
MNIST_DIR ?= $(wildcard ../shared/data/mnist)
export MNIST_DIR

RUN_ARGS = --preset $(PRESET) --seed $(SEED) --out $(OUT) $(if $(DEVICE),--device $(DEVICE))

.PHONY: install test test-fast counting friendly bench clean help

help:
	@echo "make install   create $(VENV) and install the project with its test extra"
	@echo "make test      run the whole test suite, smoke runs of both pipelines included (GPU tests need a GPU)"
	@echo "make test-fast the test suite without the tests marked slow"
	@echo "make counting  chapter 2: datasets, counters, evaluation, saliency and detection"
	@echo "make friendly  chapter 3: six MNIST networks, FGSM white-box and black-box tables"
	@echo "make bench     speed and memory benchmarks"
	@echo "variables: PRESET=smoke|quick|thesis (default quick) SEED=0 DEVICE=@numpy|@cupy:0 OUT=results DATA=data"
	@echo "           JOBS=N (make friendly: trainings at a time, each one BLAS thread; default 1)"

install: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "setuptools<70" wheel
	$(PY) -m pip install --no-build-isolation -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" tests

counting: $(STAMP)
	$(PY) -m Counting.run_all $(RUN_ARGS) --data-dir $(DATA)/counting

friendly: $(STAMP)
	$(PY) -m Friendly.run_all $(RUN_ARGS) --jobs $(JOBS)

bench: $(STAMP)
	$(PY) -m Friendly.bench --out $(OUT)/bench
	$(PY) -m Counting.bench --out $(OUT)/bench

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
