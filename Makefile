# Two commands matter: `make run` (the stack, with the sandbox, on SQLite) and
# `make test` (everything CI checks). Both set up .venv themselves.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: lock upgrade run stop test test-fast lint typecheck protos protos-check unit test-sqlite test-postgres bench clean \
	compose-test proto-lint deadcode ops-check promtool

# Every package, direct and transitive, comes from requirements/dev.txt at the version and
# hash it pins (pip refuses anything else); the project itself goes in last, without
# resolving anything more. `make lock` / `make upgrade` change the pins, on purpose.
$(STAMP): requirements/dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

## Refresh requirements/*.txt from pyproject.toml's ranges (lock: keep every pin that still
## fits; upgrade: take the newest that fits), reinstall from them, regenerate the protos with
## the locked grpcio-tools and run the fast tests: an upgrade is a reviewed commit.
lock:
	bash scripts/lock.sh
	$(MAKE) --no-print-directory $(STAMP) protos test-fast

upgrade:
	bash scripts/lock.sh --upgrade
	$(MAKE) --no-print-directory $(STAMP) protos test-fast

## Start sandbox + broker + notifier in the background, connect the demo user,
## stream its notifications, and print what to try next. `make stop` ends it.
run: $(STAMP)
	$(BIN)/python scripts/run_stack.py start

stop:
	@test -x $(BIN)/python && $(BIN)/python scripts/run_stack.py stop || true

## Everything CI runs: lint, types, proto drift and buf, all tests on SQLite and PostgreSQL,
## then the compose stack built and run for real (SKIPPED, loudly, where no Docker engine can run).
COMPOSE_TEST_FLAGS ?= --skip-without-engine
test: $(STAMP) lint deadcode typecheck protos-check proto-lint ops-check
	bash scripts/ensure_postgres.sh
	$(MAKE) --no-print-directory test-sqlite test-postgres
	$(MAKE) --no-print-directory compose-test

## The inner loop: SQLite, no test marked slow, faults or fuzz, no ops-check (make test runs them all).
test-fast: $(STAMP)
	TEST_DATABASE=sqlite $(BIN)/pytest -q -m "not slow and not faults and not fuzz" --ignore=tests/integration --ignore=tests/ops

test-sqlite: $(STAMP)
	TEST_DATABASE=sqlite $(BIN)/pytest -q --ignore=tests/ops

## The sandbox's own tests and the proto checks open no product database: SQLite's pass runs
## them; tests/ops runs once, in ops-check.
test-postgres: $(STAMP)
	bash scripts/ensure_postgres.sh
	TEST_DATABASE=postgres $(BIN)/pytest -q --ignore=tests/sandbox --ignore=tests/protos \
		--ignore=tests/ops

lint: $(STAMP)
	$(BIN)/ruff check .

## Code nothing calls (vulture); names only frameworks call are in scripts/dead_code_whitelist.py.
deadcode: $(STAMP)
	$(BIN)/vulture

typecheck: $(STAMP)
	$(BIN)/mypy

protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

protos-check: $(STAMP)
	$(BIN)/python scripts/gen_protos.py --check

# buf from npm, at the exact version package-lock.json pins, in ./node_modules.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

## buf lint (buf.yaml) and buf breaking against every earlier version of protos/.
proto-lint: node_modules/.installed
	bash scripts/proto_check.sh

## docker-compose.yml built and run for real (installs Docker and builds base images where
## missing; see scripts/compose_test.py), the integration suite in its tests container.
compose-test:
	python3 scripts/compose_test.py $(COMPOSE_TEST_FLAGS)

## The operations kit (deploy/, docs/operations.md): the alert rules checked and unit-tested
## by promtool, the rules and the dashboard held against a real scrape of the services, the
## Kubernetes manifests rendered and validated offline (tests/ops).
ops-check: $(STAMP) promtool
	promtool check rules deploy/prometheus/zoho-connect.rules.yml
	cd deploy/prometheus && promtool test rules tests.yml
	TEST_DATABASE=sqlite $(BIN)/pytest -q tests/ops

# promtool comes with Debian's prometheus package: installed where missing, as compose-test
# installs Docker (one apt-get update, then the package; root only).
promtool:
	@command -v promtool >/dev/null || { \
		test "$$(id -u)" = 0 || { echo "needs promtool: apt-get install prometheus"; exit 1; }; \
		echo "installing prometheus (for promtool): apt-get update, then install"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

clean: stop
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache node_modules
