# zotless: `make run` serves a registry on an embedded S3 + DynamoDB emulator; `make test` runs everything.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
CONFIG ?= examples/config-local.json
STAMP := $(VENV)/.installed-stamp
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup run test unit integration lint bench skopeo package clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt -e .
	touch $(STAMP)

setup: $(STAMP)

# The integration tests drive the registry with skopeo, and the client's progress display in tmux: Debian packages.
skopeo:
	@command -v skopeo >/dev/null 2>&1 && command -v tmux >/dev/null 2>&1 || { \
		echo "installing skopeo and tmux from Debian's packages"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq skopeo tmux >/dev/null; }

run: setup
	$(BIN)/zotless serve --config $(CONFIG) --port $(PORT)

test: setup skopeo lint
	$(BIN)/python -m pytest -q

unit: setup
	$(BIN)/python -m pytest -q tests/unit

integration: setup skopeo
	$(BIN)/python -m pytest -q tests/integration

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
