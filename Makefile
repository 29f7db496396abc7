# Decision Fabric — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO            ?= go
TOOLS         := $(CURDIR)/.tools
TOOLS_BIN     := $(TOOLS)/bin
BUF_VERSION   := 1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GATEWAY_VERSION            := v2.33.0
GOOGLEAPIS_MODULE          := github.com/grpc-ecosystem/grpc-gateway@v1.16.0
COSIGN_VERSION             := v2.6.5
MAILPIT_VERSION            := v1.33.1
GOLANGCI_LINT_VERSION      := v2.15.0
BUF           := $(TOOLS)/node_modules/.bin/buf
# Versioned file name, so bumping GOLANGCI_LINT_VERSION installs the new one.
GOLANGCI_LINT := $(TOOLS_BIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
export PATH   := $(TOOLS_BIN):$(PATH)

# Postgres used by the conformance suite; FABRIC_REQUIRE_POSTGRES=1 makes a missing
# server a test failure instead of a skip (CI sets it).
FABRIC_TEST_POSTGRES_DSN ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
export FABRIC_TEST_POSTGRES_DSN
# The commit `buf breaking` compares against (use BREAKING_REF=main on a branch).
BREAKING_REF  ?= HEAD~1

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

.PHONY: run
run: ## run all seven services in one process (embedded store, simulation mode)
	$(GO) run ./cmd/fabric -config fabric.dev.yaml

.PHONY: test
test: ## unit tests, store conformance (SQLite + Postgres), end-to-end suite
	$(GO) test -count=1 ./...

.PHONY: helm-lint
helm-lint: ## the Helm chart (infra/helm): helm lint --strict and a render per ci/ values file, decoded strictly, configs loaded (Helm's Go packages, no helm binary)
	$(GO) test -count=1 ./infra/helm/

.PHONY: test-race
test-race: ## the tests under the race detector
	$(GO) test -race -count=1 ./...

.PHONY: bench
bench: ## benchmarks, each printed beside its floor from the same run
	$(GO) test -run='^$$' -bench=. -benchmem ./...

.PHONY: reports
reports: ## the spec's evidence files from a real run: precheck, the fabric and the spec's verification calls, every task's tests -> reports/ (docs/operations.md)
	FABRIC_REPORTS_DIR=reports $(GO) test -count=1 -v -run '^TestReports$$' -timeout 60m ./tests/reports/

.PHONY: load
load: ## load test: max sustainable POST /proposals rate, then 4x for 30 s; figures beside floors (docs/operations.md)
	FABRIC_LOAD=1 $(GO) test -count=1 -v -run '^TestOverload$$' -timeout 10m ./tests/load/

.PHONY: crash
crash: ## crash test: SIGKILL the all-in-one fabric under load 10 times per store (SQLite, Postgres), then check it (docs/operations.md)
	FABRIC_CRASH=1 $(GO) test -count=1 -v -run '^TestCrash$$' -timeout 20m ./tests/crash/

.PHONY: crash-replicas
crash-replicas: ## replica crash test: two all-in-one fabrics on one Postgres, one SIGKILLed 20 times under load while the other serves, then check it (docs/operations.md)
	FABRIC_CRASH=1 FABRIC_REQUIRE_POSTGRES=1 $(GO) test -count=1 -v -run '^TestReplicaCrash$$' -timeout 20m ./tests/crash/

# SOAK_DURATION is how long `make soak` offers 80 % of the maximum sustainable rate.
SOAK_DURATION ?= 10m

.PHONY: soak
soak: ## soak test: max sustainable decision rate, then 80% of it for SOAK_DURATION (10m); p99 and memory flat, zero errors; figures beside floors (docs/performance.md)
	FABRIC_SOAK_DURATION=$(SOAK_DURATION) $(GO) test -count=1 -v -run '^TestSoak$$' -timeout 60m ./tests/load/

.PHONY: replicas
replicas: ## replicas test: 1000 concurrent decisions over two all-in-one fabrics on one Postgres database, then check it (docs/operations.md)
	FABRIC_REPLICAS_FULL=1 FABRIC_REQUIRE_POSTGRES=1 $(GO) test -count=1 -v -run . -timeout 20m ./tests/replicas/

.PHONY: bench-smoke
bench-smoke: ## every benchmark once, so one that breaks fails CI (figures mean nothing here)
	$(GO) test -run='^$$' -bench=. -benchtime=1x ./...

# How long `make fuzz` runs each fuzz target.
FUZZTIME      ?= 30s

.PHONY: fuzz
fuzz: ## run every Fuzz target in the repository for FUZZTIME each (make fuzz FUZZTIME=5m); CI runs only their seeds, in `make test`
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./gen/' | xargs -n1 dirname | sort -u); do \
		for target in $$($(GO) test -list '^Fuzz' $$dir | grep '^Fuzz'); do \
			echo "== $$dir $$target ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$target$$" -fuzztime=$(FUZZTIME) $$dir; \
		done; \
	done

.PHONY: token
token: ## print a development JWT: make token TENANT=t1 ROLE=proposer [SUBJECT=alice GROUPS=sre,oncall]
	@$(GO) run ./cmd/fabric token -config fabric.dev.yaml -tenant $(or $(TENANT),t1) -role $(or $(ROLE),proposer) -subject $(or $(SUBJECT),dev) -groups "$(GROUPS)"

.PHONY: precheck
precheck: ## run the compliance precheck; writes reports/I.4_precheck.json
	$(GO) run ./cmd/fabric precheck -config fabric.dev.yaml -reports-dir reports

.PHONY: build
build: ## build bin/fabric and one binary per service
	$(GO) build -o bin/ ./cmd/fabric ./services/...

# The services under services/, one image each (make images TAG=v1).
SERVICES      := $(notdir $(patsubst %/main.go,%,$(wildcard services/*/main.go)))
TAG           ?= dev

.PHONY: images
images: ## one image per service from the root Dockerfile: docker build --build-arg SERVICE=<name> .
	@set -e; for s in $(SERVICES); do \
		echo "== decision-fabric/$$s:$(TAG)"; \
		docker build --build-arg SERVICE=$$s -t decision-fabric/$$s:$(TAG) .; \
	done

.PHONY: tools
tools: $(BUF) $(TOOLS_BIN)/protoc-gen-go $(TOOLS_BIN)/protoc-gen-go-grpc $(TOOLS_BIN)/protoc-gen-grpc-gateway $(TOOLS_BIN)/protoc-gen-openapiv2 $(GOLANGCI_LINT) ## install pinned code generators and linters into .tools

.PHONY: cosign
cosign: $(TOOLS_BIN)/cosign ## install the real cosign CLI into .tools (the signing interop test uses it)
$(TOOLS_BIN)/cosign:
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/sigstore/cosign/v2/cmd/cosign@$(COSIGN_VERSION)

.PHONY: mailpit
mailpit: $(TOOLS_BIN)/mailpit ## install the mailpit SMTP server into .tools (internal/notify's e-mail tests send to it)
$(TOOLS_BIN)/mailpit:
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/axllent/mailpit@$(MAILPIT_VERSION)

.PHONY: browser
browser: ## install Debian's Chromium if missing (the approval page's browser test drives it)
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

$(GOLANGCI_LINT):
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@mv $(TOOLS_BIN)/golangci-lint $@
$(BUF):
	npm install --prefix $(TOOLS) --no-save --no-audit --no-fund @bufbuild/buf@$(BUF_VERSION) >/dev/null
$(TOOLS_BIN)/protoc-gen-go:
	GOBIN=$(TOOLS_BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS_BIN)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS_BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS_BIN)/protoc-gen-grpc-gateway:
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GATEWAY_VERSION)
$(TOOLS_BIN)/protoc-gen-openapiv2:
	GOBIN=$(TOOLS_BIN) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GATEWAY_VERSION)

.PHONY: googleapis
googleapis: ## fetch google/api/{annotations,http}.proto from the Go module cache (not committed)
	@dir=$$($(GO) mod download -json $(GOOGLEAPIS_MODULE) | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'); \
	mkdir -p $(TOOLS)/googleapis/google/api && \
	install -m 0644 $$dir/third_party/googleapis/google/api/annotations.proto $$dir/third_party/googleapis/google/api/http.proto $(TOOLS)/googleapis/google/api/

.PHONY: generate
generate: tools googleapis ## regenerate gen/ from proto/, infra/sql from the migrations, services/*/config.example.yaml from internal/config
	$(BUF) generate
	$(GO) run ./internal/store/cmd/genschema
	$(GO) run ./internal/config/cmd/genexamples

# What `make generate` writes, checked for drift by check-generate.
GENERATED     := gen infra/sql 'services/*/config.example.yaml'

.PHONY: check-generate
check-generate: generate ## fail if generated code differs from what is committed
	@git diff --exit-code -- $(GENERATED) || (echo "generated code is stale: run 'make generate' and commit" >&2; exit 1)
	@test -z "$$(git status --porcelain -- $(GENERATED))" || (echo "untracked generated files: run 'make generate' and commit" >&2; git status --porcelain -- $(GENERATED); exit 1)

.PHONY: lint
lint: tools googleapis lint-go ## gofmt, go vet, golangci-lint, buf lint, buf breaking against BREAKING_REF
	@test -z "$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))" || (gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'); echo "gofmt needed" >&2; exit 1)
	$(GO) vet ./...
	$(BUF) lint
	@$(MAKE) --no-print-directory breaking

.PHONY: lint-go
lint-go: $(GOLANGCI_LINT) ## golangci-lint (.golangci.yml: goimports, errorlint, revive and the standard linters)
	$(GOLANGCI_LINT) run ./...

.PHONY: breaking
breaking: googleapis ## buf breaking against BREAKING_REF (HEAD~1 by default)
	@rm -rf $(TOOLS)/against && mkdir -p $(TOOLS)/against; \
	if ! git cat-file -e $(BREAKING_REF):proto 2>/dev/null; then echo "buf breaking: $(BREAKING_REF) has no proto/ yet; nothing to compare"; exit 0; fi; \
	git archive $(BREAKING_REF) proto buf.yaml | tar -x -C $(TOOLS)/against && \
	mkdir -p $(TOOLS)/against/.tools && cp -r $(TOOLS)/googleapis $(TOOLS)/against/.tools/ && \
	(cd $(TOOLS)/against && $(BUF) build -o ../against.binpb) && \
	$(BUF) build -o $(TOOLS)/current.binpb && \
	$(BUF) breaking $(TOOLS)/current.binpb --against $(TOOLS)/against.binpb && echo "buf breaking: no breaking change against $(BREAKING_REF)"

.PHONY: clean
clean: ## remove build output and local data
	rm -rf bin data .tools/against .tools/against.binpb .tools/current.binpb
