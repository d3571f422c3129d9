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
JOBS   ?= 2
# A seed sweep, e.g. SEEDS=0,1,2 (replaces SEED; make friendly and make counting).
SEEDS  ?=
# The genuine MNIST files beside the checkout, when they are there; else Chainer downloads MNIST.
MNIST_DIR ?= $(wildcard ../shared/data/mnist)
export MNIST_DIR

RUN_ARGS = --preset $(PRESET) --seed $(SEED) --out $(OUT) $(if $(DEVICE),--device $(DEVICE))
SWEEP_ARGS = --preset $(PRESET) $(if $(SEEDS),--seeds $(SEEDS),--seed $(SEED)) --out $(OUT) \
    $(if $(DEVICE),--device $(DEVICE)) --jobs $(JOBS)

.PHONY: install test test-fast counting friendly bench clean help
.PHONY: wheelhouse install-offline test-numpy2 gpu-check

help:
	@echo "make install   create $(VENV) and install the project with its test extra"
	@echo "make test      run the whole test suite, smoke runs of both pipelines included (GPU tests need a GPU)"
	@echo "make test-fast the test suite without the tests marked slow"
	@echo "make counting  chapter 2: datasets, counters, evaluation, saliency and detection"
	@echo "make friendly  chapter 3: six MNIST networks, FGSM white-box and black-box tables"
	@echo "make bench     speed and memory benchmarks"
	@echo "make bench-mpi ChainerMN throughput at K = 1 and 2 MPI processes -> $(OUT)/bench/mpi.md"
	@echo "make robustness  after make friendly (same PRESET): attacks beyond FGSM, masking flags, eps curve"
	@echo "make certify   after make robustness (same PRESET): certified accuracy, bracket vs attacks"
	@echo "make lint      style check (ruff, ruff.toml); installs ruff into $(VENV) if missing"
	@echo "make test-numpy2  the test suite again under NumPy 2 (Python 3.12 when there), as on the GPU machines"
	@echo "make wheelhouse   wheels for a machine without a registry -> $(WHEELHOUSE)/ (WHEEL_PY=$(WHEEL_PY))"
	@echo "make install-offline PYTHON=...  install from $(WHEELHOUSE)/ into a Python that has NumPy and CuPy"
	@echo "make gpu-check PYTHON=...        install offline, then versions, GPU tests, short benchmark"
	@echo "variables: PRESET=smoke|quick|thesis|gpu-lease (default quick; gpu-lease: make counting only) SEED=0 DEVICE=@numpy|@cupy:0 OUT=results DATA=data"
	@echo "           JOBS=N (make friendly/counting: trainings at a time, each one BLAS thread; default 2)"
	@echo "           SEEDS=0,1,2 (make friendly/counting: a seed sweep, mean +- std; replaces SEED)"
	@echo "make install-mpi  mpich and mpi4py into $(VENV) (the mpi extra): mpiexec, --executor mpi"
	@echo "make test-mpi     the mpi-marked tests (each launches mpiexec with a timeout)"

install: $(STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade "setuptools<70" wheel
	$(PY) -m pip install --no-build-isolation -e ".[test]" "$(NUMPY_REQUIREMENT)"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -m "not mpi" tests

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not mpi" tests

counting: $(STAMP)
	$(PY) -m Counting.run_all $(SWEEP_ARGS) --data-dir $(DATA)/counting

friendly: $(STAMP)
	$(PY) -m Friendly.run_all $(SWEEP_ARGS)

bench: $(STAMP)
	$(PY) -m Friendly.bench --out $(OUT)/bench
	$(PY) -m Counting.bench --out $(OUT)/bench
	$(PY) tools/bench_libraries.py --out $(OUT)/bench

# --- ChainerMN throughput --------------------------------------------------------------------
# Counting `convolutional` images/s and Friendly S iterations/s at K = 1 and K = 2 MPI processes,
# one BLAS thread each -> $(OUT)/bench/mpi.md (needs mpiexec and mpi4py in $(VENV): make install-mpi).
.PHONY: bench-mpi
bench-mpi: install-mpi
	$(PY) tools/bench_mpi.py --out $(OUT)/bench
# --- end ChainerMN ------------------------------------------------------------------------------

# --- lint ---------------------------------------------------------------------------------
# ruff, pinned (its pycodestyle rules are preview rules, which may change between releases); the
# same pin as setup.py's `lint` extra. Installed into $(VENV) on first use, without installing
# the project, so a fresh clone can lint before anything else.
RUFF := ruff==0.17.6

.PHONY: lint
lint:
	@test -x $(VENV)/bin/ruff || { test -x $(PY) || $(PYTHON) -m venv $(VENV); \
		$(PY) -m pip install --quiet "$(RUFF)"; }
	$(VENV)/bin/ruff check .
# --- end lint --------------------------------------------------------------------------------

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache build $(WHEELHOUSE) $(NUMPY2_DIR)

# ---- NumPy 2, wheelhouse and offline install for GPU machines -----------------------------------
# setup.py accepts NumPy 1 and 2 (lenses_common/compat.py lets Chainer 7.8.1 import under NumPy 2).
# The main $(VENV) keeps NumPy 1.26, the stack Chainer 7.8.1 was released for; `make test-numpy2`
# runs the suite again on the GPU machines' stack: Python 3.12 where found, NumPy >= 2.4.
NUMPY_REQUIREMENT ?= numpy>=1.22,<2
WHEELHOUSE      ?= wheelhouse
WHEEL_PY        ?= 3.12
WHEEL_PLATFORMS ?= manylinux_2_28_x86_64 manylinux2014_x86_64
WHEELHOUSE_MIB  ?= 32
# What a GPU machine with NumPy, SciPy, pillow, matplotlib, pytest and CuPy still lacks, besides
# Chainer (built here from its source package) and this project.
WHEEL_DEPS      ?= shapely>=2 tqdm filelock typing_extensions six protobuf setuptools<70
NUMPY2_DIR      ?= .venv-numpy2
NUMPY2_BASE     ?= numpy>=2.4 pillow matplotlib pytest scipy
NUMPY2_PY       := $(NUMPY2_DIR)/python/bin/python
NUMPY2_PYTHON   ?= $(firstword $(shell \
    for p in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12; \
    do $$p -c '' 2>/dev/null && echo $$p; done) $(PYTHON))

wheelhouse: $(STAMP)
	rm -rf $(WHEELHOUSE) build && mkdir -p $(WHEELHOUSE)
	$(PY) -m pip wheel --no-deps --no-build-isolation --no-binary chainer -w $(WHEELHOUSE) \
	    "chainer==7.8.1"
	$(PY) -m pip wheel --no-deps --no-build-isolation -w $(WHEELHOUSE) .
	$(PY) -m pip download --no-deps --only-binary=:all: --python-version $(WHEEL_PY) \
	    $(addprefix --platform ,$(WHEEL_PLATFORMS)) -d $(WHEELHOUSE) $(foreach d,$(WHEEL_DEPS),"$(d)")
	rm -rf build
	@ls -l $(WHEELHOUSE)
	@total=$$(cat $(WHEELHOUSE)/*.whl | wc -c); \
	 echo "$(WHEELHOUSE)/: $$(ls $(WHEELHOUSE) | wc -l) wheels, $$total bytes" \
	      "(limit $(WHEELHOUSE_MIB) MiB)"; \
	 test $$total -le $$(( $(WHEELHOUSE_MIB) * 1048576 )) || \
	   { echo "error: $(WHEELHOUSE)/ is larger than $(WHEELHOUSE_MIB) MiB" >&2; exit 1; }

# With PYTHON=$(PY) (a venv made with --system-site-packages over the node's Python) the Make
# targets then run without a registry.
install-offline:
	bash tools/install_offline.sh "$(PYTHON)" "$(WHEELHOUSE)"
	@if [ "$(PYTHON)" = "$(PY)" ]; then touch $(STAMP); fi

$(NUMPY2_DIR)/.base: setup.py
	rm -rf $(NUMPY2_DIR)
	$(NUMPY2_PYTHON) -m venv $(NUMPY2_DIR)/python
	$(NUMPY2_PY) -m pip install $(foreach d,$(NUMPY2_BASE),"$(d)")
	touch $@

test-numpy2: $(STAMP) $(NUMPY2_DIR)/.base
	$(MAKE) wheelhouse WHEELHOUSE=$(NUMPY2_DIR)/wheelhouse \
	    WHEEL_PY=$$($(NUMPY2_PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
	$(MAKE) install-offline PYTHON=$(NUMPY2_PY) WHEELHOUSE=$(NUMPY2_DIR)/wheelhouse
	$(NUMPY2_PY) -m pytest tests

gpu-check:
	bash tools/gpu_check.sh "$(PYTHON)" "$(WHEELHOUSE)"

# ---- Robustness beyond the thesis: run after `make friendly` with the same PRESET ----
# Trains the PGD-adversarially trained S-PGDAT if missing, then writes OUT/friendly/robustness.md,
# .csv, .json and eps_curve.png (Friendly.robustness: FGSM float32/float64/BN modes, PGD, margin
# PGD, black-box, worst case, gradient-masking flags, accuracy against eps).
.PHONY: robustness
robustness: $(STAMP)
	$(PY) -m Friendly.run_robustness $(RUN_ARGS)

# Certified robustness (after make friendly and make robustness, same PRESET): interval bounds and
# the backward linear relaxation of every network, S-PGDAT and S-IBP, and the bracket against the
# attacks -> OUT/friendly/certify.md, .csv, .json and bracket.png (Friendly.run_certify).
.PHONY: certify
certify: $(STAMP)
	$(PY) -m Friendly.run_certify $(RUN_ARGS)

# ---- MPI: seed sweeps on mpi4py.futures workers, ChainerMN data-parallel training ----
# The `mpi` extra: MPICH and mpi4py as wheels from the registry, so $(VENV)/bin/mpiexec exists
# without a system MPI. A cluster uses its own MPI instead (docs/seeds-mpi-chainermn.md).
MPI_STAMP := $(VENV)/.installed-mpi

.PHONY: install-mpi test-mpi
install-mpi: $(MPI_STAMP)

$(MPI_STAMP): $(STAMP) setup.py
	$(PY) -m pip install --no-build-isolation -e ".[test,mpi]" "$(NUMPY_REQUIREMENT)"
	touch $(MPI_STAMP)

# Every `mpi`-marked test; each starts its own `mpiexec` under a timeout, so a hung rank fails.
test-mpi: $(MPI_STAMP)
	$(PY) -m pytest -m mpi tests
