# The two commands of the README: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/.tools/bin:$(CURDIR)/$(BIN):$(PATH)

.PHONY: gameday-full mutants demo test test-cluster test-containers k8s-demo cluster-tools bootstrap kubernetes-tools lint typecheck unit integration e2e adversarial lock bench clean

bootstrap:
	@scripts/bootstrap.sh all

demo: bootstrap
	@$(BIN)/stormproof demo

# The nightly target: every experiment of the catalogue (see gamedays/full.yaml).
gameday-full: bootstrap
	@$(BIN)/stormproof gameday run gamedays/full.yaml --out .stormproof/gameday-full

# Nightly too: every engine mutant of the catalogue must be caught by the SLO it names, and the
# unmutated engine must pass the same scenarios (docs/gamedays.md, "Mutants").
mutants: bootstrap
	@$(BIN)/stormproof gameday mutants gamedays/mutants.yaml --out .stormproof/mutants

# Two pytest workers (pytest-xdist): most tests wait on real processes and sockets, so two
# workers on two cores halve the wall time. `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= 2

# Then the cluster e2e, alone (one node per machine, and its failover figures want the cores):
# bring-up, the local overlay, the leader killed, the k8s smoke game day and the mutant it must
# catch. The slow pod-replacement figures (a Redis restart waits out crash-loop backoff) are
# `make test-cluster`'s.
test: bootstrap kubernetes-tools cluster-tools lint typecheck
	@$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not cluster and not containers"
	@$(BIN)/python -m pytest -q -p no:xdist -m "cluster and not figures" tests/integration/harness/cluster

# The deployment on a real one-node Kubernetes cluster on this machine (root): bring-up, the
# local overlay on the project's own images, failover and pod replacement judged from the Lease
# and the simulator, the k8s smoke game day and a mutant it must catch
# (tests/integration/harness/cluster), with the slow figures `make test` leaves out. One node
# per machine: one process.
test-cluster: bootstrap cluster-tools
	@$(BIN)/python -m pytest -q -p no:xdist -m cluster

# The stack's parts as containers of the project's images through testcontainers, on Podman's
# Docker-compatible service (root; tests/integration/harness/containers).
test-containers: bootstrap
	@scripts/bootstrap.sh podman
	@$(BIN)/python -m pytest -q -p no:xdist -m containers

# The third command: the local cluster, the images, the local overlay rolled out, the k8s smoke
# game day (gamedays/k8s-smoke.yaml). A fresh cluster each time: the staging venue keeps its accounts in memory, the journal on a
# volume; an old journal against a new venue is position drift, and the engine rightly halts.
k8s-demo: bootstrap cluster-tools
	@$(BIN)/stormproof cluster down --purge
	@$(BIN)/stormproof cluster up --deployment-images
	@$(BIN)/stormproof deploy apply
	@$(BIN)/stormproof cluster status
	@$(BIN)/stormproof gameday run gamedays/k8s-smoke.yaml --target k8s \
		--kubeconfig .stormproof/cluster/pki/admin.kubeconfig --out .stormproof/gameday-k8s

# containerd, runc, CNI plugins (Debian), every Kubernetes binary and CoreDNS (built once),
# and the cluster's images (stormproof image build: Debian packages and pinned wheels fetched
# here, in the setup, never by a test; a hash check when nothing changed).
cluster-tools: bootstrap kubernetes-tools
	@scripts/bootstrap.sh cluster
	@$(BIN)/stormproof image build

# etcd and kube-apiserver for the lease tests against a real API server, kubectl for the
# manifests' validation and promtool for the alert rules' (each built once, minutes).
kubernetes-tools:
	@scripts/bootstrap.sh kubernetes promtool

lint: bootstrap
	@$(BIN)/ruff check plumbing engine replay harness tests benchmarks load
	@$(BIN)/ruff format --check plumbing engine replay harness tests benchmarks load

typecheck: bootstrap
	@$(BIN)/mypy

unit: bootstrap
	@$(BIN)/python -m pytest -q -m unit

integration: bootstrap kubernetes-tools
	@$(BIN)/python -m pytest -q -m integration

e2e: bootstrap
	@$(BIN)/python -m pytest -q -m e2e

# Hostile clients against live servers (docs/limits.md); `make test` runs them too.
adversarial: bootstrap
	@$(BIN)/python -m pytest -q -m adversarial

# Benchmarks (docs/benchmarks.md): each prints JSON lines; they take a few minutes.
bench: bootstrap
	@$(BIN)/python -m benchmarks.replay_throughput
	@$(BIN)/python -m benchmarks.replay_pacing
	@$(BIN)/python -m benchmarks.replay_memory
	@$(BIN)/python -m benchmarks.venue_orders
	@$(BIN)/python -m benchmarks.feed_to_bus
	@$(BIN)/python -m benchmarks.gc_pause
	@$(BIN)/python -m benchmarks.tick_to_order
	@$(BIN)/python -m benchmarks.recovery_time
	@$(BIN)/python -m benchmarks.load_capacity
	@$(BIN)/python -m benchmarks.venue_handler_instructions  # needs valgrind
	@$(BIN)/python -m benchmarks.http_parsers  # needs valgrind and httptools (pip install httptools)

# Regenerates requirements/lock.txt from pyproject.toml in a throwaway virtualenv.
lock:
	@rm -rf .lock-venv && python3 -m venv .lock-venv && .lock-venv/bin/pip install -q --upgrade pip \
	  && .lock-venv/bin/pip install -q '.[dev]' && .lock-venv/bin/pip freeze --exclude stormproof \
	  | grep -v "^-e" > requirements/lock.txt && printf "setuptools==84.2.1\nwheel==0.45.1\n" >> requirements/lock.txt && rm -rf .lock-venv && echo "requirements/lock.txt updated"

clean:
	rm -rf .stormproof build *.egg-info .pytest_cache .mypy_cache .ruff_cache
