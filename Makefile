# Set-up in two commands: `make run` and `make test`. Both create .venv on first use.
VENV ?= .venv
BIN := $(VENV)/bin
SPEC ?= experiments/digits.yaml

.PHONY: run test test-fast bench install clean

$(BIN)/.installed: pyproject.toml requirements/lock.txt scripts/install.sh
	bash scripts/install.sh $(VENV) dev
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/dlrun $(SPEC)

# Two workers, one test file each at a time (module fixtures train once); 3 workers are slower, the multi-process
# tests contend, and so is starting the longest files first (9:58 against 9:39 in adjacent runs: they run side by
# side). Bytecode is cached, as users have it: the suite starts dlrun in many fresh processes, and each would
# compile the package again (0.19 s each).
PYTEST_FLAGS ?= -n 2 --dist loadfile

test: $(BIN)/.installed
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q $(PYTEST_FLAGS)

test-fast: $(BIN)/.installed
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q $(PYTEST_FLAGS) -m "not slow"

# Speed lives here, not in tests: start-up, per-spec rejection and SIGTERM latency, medians and ratios.
bench: $(BIN)/.installed
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) runs .pytest_cache

# ---- docker targets: begin (docs/gpu-hosts.md; the image installs through scripts/install.sh too) ----
# make docker-build [FLAVOR=cpu]   make docker-run SPEC=experiments/cifar10.yaml [ARGS="--set train.epochs=5"]
# make docker-tensorboard          (http://127.0.0.1:6006, published on this host's loopback only)
IMAGE ?= dlrun
FLAVOR ?= gpu
GPUS ?= all
ARGS ?=
DATA_DIR ?= $(HOME)/tensorflow_datasets
HOST_UID := $(shell id -u)
HOST_GID := $(shell id -g)
# Files in runs/ belong to you; as root on the host, the image keeps a non-root user (1000).
IMAGE_UID := $(if $(filter 0,$(HOST_UID)),1000,$(HOST_UID))
IMAGE_GID := $(if $(filter 0,$(HOST_UID)),1000,$(HOST_GID))

.PHONY: docker-build docker-run docker-tensorboard

docker-build:
	docker build --build-arg FLAVOR=$(FLAVOR) --build-arg UID=$(IMAGE_UID) --build-arg GID=$(IMAGE_GID) \
	  -t $(IMAGE):$(FLAVOR) .

# Host directories are created first: Docker would create them owned by root.
docker-run:
	mkdir -p runs $(DATA_DIR)
	docker run --rm $(if $(filter gpu,$(FLAVOR)),--gpus $(GPUS)) --shm-size=2g --stop-timeout 120 \
	  --user $(IMAGE_UID):$(IMAGE_GID) -v $(CURDIR)/runs:/workspace/runs -v $(DATA_DIR):/workspace/tensorflow_datasets \
	  -v $(CURDIR)/experiments:/workspace/experiments:ro \
	  $(IMAGE):$(FLAVOR) $(SPEC) $(ARGS)

docker-tensorboard:
	mkdir -p runs
	docker run --rm --user $(IMAGE_UID):$(IMAGE_GID) -p 127.0.0.1:6006:6006 -v $(CURDIR)/runs:/workspace/runs:ro \
	  $(IMAGE):$(FLAVOR) tensorboard /workspace/runs --host 0.0.0.0 --port 6006
# ---- docker targets: end ----
