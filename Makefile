# One entry point for people and CI: `make serve`, `make test`, `make bench`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
CONFIG ?= callhook.toml

.PHONY: serve test lint unit bench install dev clean chromium nginx sip-tools postgresql redis iproute2

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(STAMP)

## serve: set up and run the hub on embedded defaults (SQLite file, in-process bus)
serve: $(VENV)/.installed
	$(BIN)/callhook serve --config $(CONFIG) --init

## lint: formatting, lint and types
lint: $(STAMP)
	$(BIN)/ruff format --check callhook tests bench
	$(BIN)/ruff check callhook tests bench
	$(BIN)/mypy

## chromium: Debian's Chromium for the dashboard's browser tests (no browser is downloaded)
chromium:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

## nginx: Debian's nginx, the real reverse proxy of the trusted_proxies tests
nginx:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light)

## sip-tools: Debian's Kamailio 5.6 (with the module packages the adapter loads) and SIPp
KAMAILIO_PACKAGES := kamailio kamailio-extra-modules kamailio-utils-modules sip-tester
sip-tools:
	@command -v kamailio >/dev/null && command -v sipp >/dev/null \
	  && test -f /usr/lib/x86_64-linux-gnu/kamailio/modules/http_client.so \
	  && test -f /usr/lib/x86_64-linux-gnu/kamailio/modules/jansson.so \
	  || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(KAMAILIO_PACKAGES))

## postgresql: Debian's PostgreSQL; the tests start their own server on a free loopback port
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
	  || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql)

## redis: Debian's redis-server; the cluster tests start their own on a free loopback port
redis:
	@command -v redis-server >/dev/null || test -x /usr/bin/redis-server \
	  || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server)

## iproute2: `ip netns`, for the test that cuts a node (in a network namespace) off the network
iproute2:
	@command -v ip >/dev/null || test -x /usr/sbin/ip || test -x /sbin/ip \
	  || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iproute2)

## test: set up, lint, and run the whole suite; the end-to-end tests once more on PostgreSQL
PYTEST := $(BIN)/pytest -q -p no:cacheprovider -n 3 --dist loadfile --no-loadscope-reorder
test: lint chromium nginx sip-tools postgresql redis iproute2
	$(PYTEST)
	TEST_DATABASE_BACKEND=postgresql $(PYTEST) -m "not own_engines" tests/e2e

BENCHES := bench/ingest.py bench/correlate.py bench/fanout.py bench/webhooks.py bench/auth_flood.py bench/http_guard.py bench/dashboard.py

## bench: run every benchmark; each prints a table and ends with `RATIO <name> <value>`
bench: $(STAMP) postgresql redis chromium
	@command -v wrk >/dev/null || (apt-get install -y wrk >/dev/null 2>&1 || apt-get update >/dev/null && apt-get install -y wrk >/dev/null) || echo "wrk not installed: using the built-in load generator"
	@for b in $(BENCHES); do echo "== $$b"; $(BIN)/python $$b || exit 1; done
	@for b in bench/ingest.py bench/fanout.py bench/webhooks.py; do echo "== $$b on PostgreSQL"; BENCH_DATABASE=postgresql $(BIN)/python $$b || exit 1; done
	@echo "== bench/pg_driver.py"; $(BIN)/python bench/pg_driver.py || exit 1
	@echo "== bench/cluster.py"; $(BIN)/python bench/cluster.py || exit 1
	@echo "== bench/cluster_webhooks.py"; $(BIN)/python bench/cluster_webhooks.py || exit 1
	@if command -v kamailio >/dev/null && command -v sipp >/dev/null; then \
	  echo "== bench/kamailio.py"; $(BIN)/python bench/kamailio.py || exit 1; \
	else echo "== bench/kamailio.py: skipped, Kamailio/SIPp not installed (make sip-tools)"; fi

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
