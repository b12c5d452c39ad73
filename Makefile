# zotless: `make run` serves a registry on an embedded S3 + DynamoDB emulator; `make test` runs everything;
# `make fast` is the inner loop (unit tests that start no process). docs/testing.md explains the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
CONFIG ?= examples/config-local.json
DATA ?= .zotless
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run test fast unit integration aws-test e2e lint bench skopeo package clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt -e .
	touch $(STAMP)

setup: $(STAMP)

# The integration tests drive the registry with skopeo, the web page with chromium and the client's
# progress display in tmux: Debian packages.
skopeo:
	@command -v skopeo >/dev/null 2>&1 && command -v tmux >/dev/null 2>&1 && command -v chromium >/dev/null 2>&1 || { \
		echo "installing skopeo, tmux and chromium from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq skopeo tmux chromium >/dev/null; }

run: setup
	$(BIN)/zotless serve --config $(CONFIG) --port $(PORT) --data $(DATA)

# Unit tests in parallel (each has its own in-process moto); integration tests serially, since they
# share session-scoped servers that every xdist worker would otherwise start again.
XDIST ?= -n 2
test: setup skopeo lint
	$(BIN)/python -m pytest -q $(XDIST) tests/unit
	$(BIN)/python -m pytest -q tests/integration

fast: setup
	$(BIN)/python -m pytest -q $(XDIST) -m "not process and not slow" tests/unit

unit: setup
	$(BIN)/python -m pytest -q $(XDIST) tests/unit

integration: setup skopeo
	$(BIN)/python -m pytest -q tests/integration

# chalice deploy onto ministack (Lambda without Docker), skopeo through its API Gateway, scheduled GC.
e2e: setup skopeo
	ZOTLESS_TEST_E2E=1 $(BIN)/python -m pytest -q tests/e2e

# The integration suite on real S3 + DynamoDB (credentials from the usual places; docs/testing.md).
aws-test: setup skopeo
	ZOTLESS_TEST_AWS=1 $(BIN)/python -m pytest -q tests/integration

lint: setup
	$(BIN)/ruff check .

bench: setup skopeo
	$(BIN)/python bench/bench_push_pull.py

# The CloudFormation package of a stage, with bytecode in the zip (cold import 508 -> 221 ms, bench/README.md).
STAGE ?= prod
package: setup
	rm -rf out && $(BIN)/chalice package --stage $(STAGE) --merge-template deploy/resources-$(STAGE).json out/
	$(BIN)/python tools/bytecode.py out/deployment.zip

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
