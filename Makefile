# Checkout Platform — every entry point. `make test` and `make dev` install what they need.
SHELL := bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 4

.PHONY: help venv browser java lint typecheck test pytest-phases test-fast dev bench bench-api bench-engines bench-client bench-servers bench-operator wrk clean

help:
	@echo "make dev      run the shop (http://127.0.0.1:8000) and the four services as local processes (no Docker needed; TRACING=1: with Jaeger)"
	@echo "make test     install everything, then lint, type-check and run every test"
	@echo "make lint     ruff check + ruff format --check"
	@echo "make up       the platform on a kind cluster (a Docker engine, or Debian's dockerd; prints the URL)"
	@echo "make down     delete the kind cluster"
	@echo "make e2e      only the cluster tests: tests/cluster, tests/e2e_kind, then tests/e2e_skaffold"
	@echo "make bench    key rotations under load (local mode; prints figures, takes ~4 min)"
	@echo "make bench-api  requests/s, latency, CPU and database work per endpoint (local mode, wrk)"
	@echo "make bench-engines  the MongoDB-wire engines side by side: correctness, CPU per command, memory, the test suite on each"
	@echo "make bench-client  one service-to-service call's CPU: httpx on httpcore vs on aiohttp's pool"
	@echo "make bench-servers  the ASGI servers side by side: uvicorn (h11, httptools+uvloop), Granian (wrk)"
	@echo "make bench-operator  100 Checkouts on a real kube-apiserver: apply time, CPU waiting and steady, memory"

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The venv is rebuilt from the lock whenever the lock or pyproject changes.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --python python3.11
	@touch $@

venv: $(VENV)/.synced

# The browser tests (tests/browser) drive Debian's chromium through Playwright (no browser is
# downloaded) and check each page with axe-core, pinned in tests/browser/package-lock.json and
# installed again only when the lock changes. chromium and npm are installed when missing and this
# is root on Debian; elsewhere the browser tests skip, saying why (under CI=true they fail).
BROWSER_DIR := tests/browser
APT_INSTALL := apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends
CAN_APT := [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null

browser: $(BROWSER_DIR)/node_modules/.installed
	@command -v chromium >/dev/null || { $(CAN_APT) && $(APT_INSTALL) chromium fonts-liberation >/dev/null; } || \
	    echo "browser: no chromium (Debian: apt-get install chromium); the browser tests skip" >&2

$(BROWSER_DIR)/node_modules/.installed: $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json
	@if command -v npm >/dev/null || { $(CAN_APT) && $(APT_INSTALL) npm >/dev/null; }; then \
	    npm ci --prefix $(BROWSER_DIR) --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "browser: no npm for axe-core (Debian: apt-get install npm); the browser tests skip" >&2; fi

# The database engine of local mode and the tests (services/local/mongo_server.py) is
# mongo-java-server on H2: built once per machine with Maven (from Maven Central) and a JDK into
# ~/.cache/checkout-platform/, by the first server started, and run on the JDK's JRE. The JDK and
# Maven are installed when missing and this is root on Debian; elsewhere local mode and the tests
# run FerretDB instead, saying why (under CI=true they fail).
JAVA_TOOLS := command -v java >/dev/null && command -v javac >/dev/null && command -v mvn >/dev/null
java:
	@$(JAVA_TOOLS) || { $(CAN_APT) && $(APT_INSTALL) default-jdk-headless maven >/dev/null; } || \
	if [ "$$CI" = true ]; then \
	    echo "java: no JDK and Maven for mongo-java-server (Debian: apt-get install default-jdk-headless maven)" >&2; exit 1; \
	else echo "java: no JDK and Maven (Debian: apt-get install default-jdk-headless maven); FerretDB runs instead" >&2; fi

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

# pytest runs with a Docker engine when this machine has one, or can start a private one (it is
# stopped afterwards); the cluster tests build what they need and skip, saying why, without one.
# Three phases: everything else first, then the tests on the kind cluster with two workers, so the
# cluster's pods do not compete with four test workers for the two cores, then skaffold on that
# cluster alone (it upgrades the operator and the sample the platform tests share). All three
# always run, as one run (one CHECKOUT_TEST_RUN_ID): the cluster made in the second phase is kept
# for the third, which deletes it unless CHECKOUT_KEEP_CLUSTER=1.
CLUSTER_TESTS := tests/cluster tests/e2e_kind
SKAFFOLD_TESTS := tests/e2e_skaffold
test: venv browser java lint typecheck
	bash k8s/offline/engine/engine.sh run $(MAKE) --no-print-directory pytest-phases

pytest-phases:
	@status=0; \
	export CHECKOUT_TEST_RUN_ID="$${CHECKOUT_TEST_RUN_ID:-$$(date +%s)-$$$$}"; \
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile \
	    $(CLUSTER_TESTS:%=--ignore=%) $(SKAFFOLD_TESTS:%=--ignore=%) || status=$$?; \
	CHECKOUT_KEEP_CLUSTER=1 $(VENV)/bin/pytest -n 2 --dist loadfile $(CLUSTER_TESTS) || status=$$?; \
	$(VENV)/bin/pytest -p no:xdist $(SKAFFOLD_TESTS) || status=$$?; \
	exit $$status

test-fast: venv browser java
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadfile -x

dev: venv java
	$(PY) -m services.local

bench: venv java
	$(PY) -m bench.rotation_load

# wrk is Debian's package; installed here when missing and this is root on Debian.
wrk:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
	    { echo "bench: install wrk (Debian: apt-get install wrk)" >&2; exit 1; }

bench-api: venv wrk java
	$(PY) -m bench.api $(BENCH_ARGS)

# FerretDB (SQLite, PostgreSQL) and mongo-java-server (memory, H2), one after the other.
bench-engines: venv java
	$(PY) -m bench.engines $(BENCH_ARGS)

bench-client: venv
	$(PY) -m bench.client $(BENCH_ARGS)

bench-servers: venv wrk java
	$(PY) -m bench.servers $(BENCH_ARGS)

# The operator as its own process against the real kube-apiserver the operator tests use.
bench-operator: venv
	$(PY) -m bench.operator $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache $(BROWSER_DIR)/node_modules

-include mk/*.mk
