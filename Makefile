# kubectl-svcpath. `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

GO    ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOFMT ?= $(dir $(GO))gofmt

MODULE := github.com/svcpath/kubectl-svcpath
BIN       ?= bin/kubectl-svcpath
AGENT_BIN ?= bin/svcpath-agent

# Build identity, stamped into pkg/version. A clone without tags (or without
# commits) still builds: the version falls back to "dev".
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
DATE        ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
AGENT_IMAGE ?= ghcr.io/svcpath/svcpath-agent:$(VERSION)

LDFLAGS := -s -w \
	-X $(MODULE)/pkg/version.Version=$(VERSION) \
	-X $(MODULE)/pkg/version.Commit=$(COMMIT) \
	-X $(MODULE)/pkg/version.Date=$(DATE) \
	-X $(MODULE)/pkg/version.AgentImage=$(AGENT_IMAGE)

# Packages whose tests define the -update flag (see `golden`).
GOLDEN_PKGS = $(shell grep -rl --include='*_test.go' 'flag\.Bool."update"' pkg 2>/dev/null | xargs -r -n1 dirname | sort -u | sed 's|^|./|')

.PHONY: help build agent-image test lint demo bench fuzz golden clean e2e lab-up lab-down lab-shell release-check

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/kubectl-svcpath and bin/svcpath-agent (static, version stamped)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kubectl-svcpath
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(AGENT_BIN) ./cmd/svcpath-agent

agent-image: build ## Build the agent image with docker (tag $(AGENT_IMAGE))
	docker build -f hack/agent.Dockerfile -t $(AGENT_IMAGE) bin

test: ## Run all tests (root/netns tests run when root, else skip saying why)
	$(GO) test -count=1 ./...

lint: ## go vet, gofmt and the import rules of hack/verify-imports.sh
	$(GO) vet ./...
	$(GO) vet -tags e2e ./hack/e2e/
	@files="$$($(GOFMT) -l $$(find . -name '*.go' -not -path './.git/*' -not -path './vendor/*'))"; \
	if [ -n "$$files" ]; then echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$files"; exit 1; fi
	hack/verify-imports.sh

e2e: ## End-to-end tests on a real one-node cluster, kube-proxy iptables and nftables modes (root; hack/lab)
	hack/lab/e2e.sh

lab-up: ## Start the lab cluster (MODE=iptables|nftables); then `make lab-shell`
	hack/lab/lab.sh up $(or $(MODE),iptables)

lab-shell: ## A shell inside the lab: kubectl and kubectl svcpath talk to it
	hack/lab/lab.sh shell

lab-down: ## Stop the lab and restore the machine
	hack/lab/lab.sh down

demo: build ## Explain default/test from the walkthrough snapshot
	$(BIN) default/test --snapshot examples/walkthrough

bench: ## Run the benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/...

fuzz: ## Fuzz the iptables parser for 30s
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./pkg/iptables/

golden: ## Regenerate golden files (go test ./pkg/... -update), then review the diff
	@if [ -z "$(GOLDEN_PKGS)" ]; then echo "no package defines -update"; exit 1; fi
	$(GO) test $(GOLDEN_PKGS) -update

release-check: ## goreleaser check and snapshot build of every target, krew manifest and completion checks (hack/release-check.sh)
	GO=$(GO) hack/release-check.sh

clean: ## Remove build output
	rm -rf bin dist
