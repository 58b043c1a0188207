# Line inspection: the two commands for a fresh machine are `make demo` and `make test` (README.md).
# Everything else here is a step of those two, or a tool for developers.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
KAFKA := $(PY) -m line_harness.kafka
KAFKA_PORT ?= 9092
KAFKA_SECURITY ?= plaintext
PARTITIONS ?= 6
# Whole-run limit of `make test`; on expiry pytest gets SIGINT, so fixtures still stop the broker.
TEST_WALL_TIMEOUT ?= 50m
PYTEST_ARGS ?=

# helm built by `make tools` lives here; tests find it on PATH.
export PATH := $(CURDIR)/tools/bin:$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: help setup kafka-jars kafka-start kafka-stop kafka-status kafka-topics kafka-logs tools \
        test test-all demo bench bench-gpu chaos schemas clean distclean \
        evidence-server evidence-start evidence-stop demo-model train-dagm train-images evaluate perf-worker bench-pacing bench-training dashboards lock cluster-build test-cluster

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv and install the project with its dev extras (skipped when up to date)

# The tests run on the versions the images ship: the venv installs under the images' constraints file
# (to move a pin: pip install -U NAME in .venv, run the tests, then `make lock`).
$(STAMP): pyproject.toml deploy/docker/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is required (set PYTHON=...)")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c deploy/docker/constraints.txt -e '.[dev]'
	@touch $(STAMP)

kafka-jars: ## fetch the Kafka broker jars with Maven (skipped when present)
	@$(PYTHON) -m line_harness.kafka fetch

kafka-start: setup kafka-jars ## start the local broker in the background (KAFKA_PORT, KAFKA_SECURITY=plaintext|sasl_ssl)
	$(KAFKA) start --port $(KAFKA_PORT) --security $(KAFKA_SECURITY)

kafka-stop: ## stop the local broker (also a stale one)
	@$(PYTHON) -m line_harness.kafka stop

kafka-status: ## is the local broker running?
	@$(PYTHON) -m line_harness.kafka status

kafka-topics: setup ## create the line's topics on the local broker (PARTITIONS)
	$(KAFKA) create-topics --partitions $(PARTITIONS)

kafka-logs: ## tail of the local broker's log
	@$(PYTHON) -m line_harness.kafka logs

evidence-server: ## build the local S3 object store for evidence (SeaweedFS, Go; cached in ~/.cache/line-inspection)
	@bash deploy/evidence/build.sh >/dev/null

evidence-start: setup evidence-server ## start the local evidence store in the background (S3 on LOCAL_S3_PORT, default 8333)
	$(PY) -m line_harness.evidence_store start

evidence-stop: ## stop the local evidence store
	@$(PYTHON) -m line_harness.evidence_store stop

tools: ## helm (built with Go into tools/bin) and promtool/prometheus (apt) when missing
	bash deploy/tools/install.sh

test: setup kafka-jars tools evidence-server ## set up, then run the default test suite (real broker, helm, promtool)
	timeout -s INT -k 60 $(TEST_WALL_TIMEOUT) $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-all: setup kafka-jars tools evidence-server cluster-build ## the whole suite, slow tests included (the local cluster ones too)
	$(PY) -m pytest -q $(PYTEST_ARGS)

demo: setup kafka-jars evidence-server ## set up, then run the local demo line (broker, model, worker, simulator, numbers)
	bash deploy/demo.sh

bench: setup kafka-jars evidence-server ## performance benchmark (docs/performance.md)
	bash deploy/bench.sh

bench-gpu: ## GPU numbers in one command (<= 8 min measuring): model alone, worker end to end; DRY=1: on CPU, tiny
	BENCH_GPU_DRY=$(if $(filter 1 yes true,$(DRY)),1,0) bash deploy/bench-gpu.sh

chaos: setup kafka-jars evidence-server ## fault suite (docs/reliability.md)
	bash deploy/chaos.sh

schemas: setup ## regenerate docs/schemas/*.json from line_contracts
	$(PY) -m line_contracts.schemas

DAGM ?= ../shared/datasets/dagm2007/Class8
MODEL ?= models/dagm
DATA ?= $(DAGM)
SPLIT ?= Test
REPORT ?= run/evaluate
BOOTSTRAP ?= localhost:$(KAFKA_PORT)

demo-model: setup ## train the quick demo model on synthetic frames into models/demo
	$(PY) -m training quick-demo --out models/demo

train-dagm: setup ## train the DAGM model (DAGM=<class folder>) into models/dagm (docs/training.md)
	$(PY) -m training train --data $(DAGM) --out models/dagm

train-images: setup ## train on DATA=<folder with defect/ ok/ [masks/]> into OUT (default models/line); PLAN=1: plan only
	$(PY) -m training train --data $(DATA) --out $(or $(OUT),models/line) $(if $(PLAN),--plan,)

evaluate: setup ## evaluation report: MODEL=<dir> DATA=<DAGM class folder> SPLIT=Test REPORT=<out dir>
	$(PY) -m training evaluate --model $(MODEL) --data $(DATA) --split $(SPLIT) --report $(REPORT)

perf-worker: setup kafka-jars ## worker frames/s vs the model alone, one run (WORKER_PERF_MODEL=<model dir>)
	$(PY) -m pytest -m slow tests/integration/worker/test_worker_perf.py -s

bench-training: setup ## training speed with and without TensorFlow's BFC CPU allocator (DATA=dir, default a generated set)
	$(PY) -m line_harness.bench.training_speed $(if $(DATA),--data $(DATA))

bench-pacing: setup ## simulator pacing check, 6 cameras x 30 fps x 60 s, on a running broker (BOOTSTRAP)
	$(PY) -m producer_sim.bench_pacing --bootstrap-servers $(BOOTSTRAP)

dashboards: setup ## regenerate the Grafana dashboards, the chart's copies of rules and dashboards, the chart README
	$(PY) -m line_harness.grafana.build && $(PY) -m line_harness.tools.sync_chart_files && $(PY) -m line_harness.tools.chart_readme

lock: setup ## pin the images' runtime dependencies to the tested versions (deploy/docker/constraints.txt)
	$(PY) -m line_harness.tools.lock_constraints

cluster-build: ## build the local Kubernetes control plane (Go, low priority; cached in ~/.cache/line-inspection)
	bash deploy/cluster/build.sh

test-cluster: setup tools cluster-build ## install every ci/ values file on a local API server with kwok nodes (docs/deploy.md)
	$(PY) -m pytest -q -m slow tests/integration/cluster $(PYTEST_ARGS)

clean: ## stop the local broker, remove run/ (broker data, logs, demo output) and caches
	-@$(PYTHON) -m line_harness.kafka stop
	-@$(PYTHON) -m line_harness.evidence_store stop
	rm -rf run build .pytest_cache

distclean: clean ## also remove .venv, the Kafka jars and tools/
	rm -rf $(VENV) deploy/kafka/target tools
