# berth's build, demo, test and lint entry points. Everything a fresh machine needs
# is built or installed from here: Go tools from the Go module proxy into .tools/,
# control plane binaries into the user cache (see internal/localcluster), and the
# Debian packages the tests use.

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -X berth.dev/berth/internal/buildinfo.version=$(VERSION) -X berth.dev/berth/internal/buildinfo.commit=$(COMMIT)
TOOLS       := $(CURDIR)/.tools
STATICCHECK := $(TOOLS)/staticcheck
STATICCHECK_VERSION := v0.8.2

.PHONY: all build demo test lint fuzz generate verify-generated bench bench-controller bench-scale image fmt deps clean

all: build

## build: compile bin/berth
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/berth ./cmd/berth

## demo: the main job on the embedded default: berth quickstart (local cluster,
## workspace in ~/berth-quickstart, demo stack deployed and healthy)
# Charts come from the offline mirror (scripts/chart-mirror.sh) when there is one.
demo: build deps
	BERTH_CHART_MIRROR="$$(./scripts/chart-mirror.sh 2>/dev/null || true)" ./bin/berth quickstart

## test: the whole test suite against one shared local cluster, cleaned up after
test: build deps
	./scripts/test.sh

## deps: system packages the tests use (git, git-crypt, chromium), installed when missing
deps:
	@./scripts/deps.sh

## fuzz: run each fuzz target briefly (FUZZTIME each), from its seed corpus on
FUZZTIME ?= 10s
fuzz:
	$(GO) test ./internal/secrets -run '^$$' -fuzz '^FuzzDecrypt$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/secrets -run '^$$' -fuzz '^FuzzParseKey$$' -fuzztime $(FUZZTIME)
	$(GO) test ./internal/secrets -run '^$$' -fuzz '^FuzzEncrypt$$' -fuzztime $(FUZZTIME)

## generate: regenerate deepcopy and CRD YAML (controller-gen from the module proxy)
generate:
	$(GO) generate ./api/...

## verify-generated: fail when the generated code is not what the sources give
verify-generated: generate
	@git diff --exit-code -- api config || { echo "generated code is stale: run make generate and commit"; exit 1; }

## bench: the deploy engine against kubectl and helm on one API server (~40 min)
bench:
	./bench/run.sh

## bench-controller: 1,000 apps x 10 objects under one controller, against the
## raw ceiling (a plain parallel apply loop on the same cluster, once before
## berth's sync and once after it: the ratio to their mean cancels the
## machine's drift over the run)
bench-controller:
	$(GO) run ./bench/controller -raw-before -o bench/controller/results.md

## bench-scale: bench-controller with Flux's source-controller and
## kustomize-controller side by side (built into ~/.cache/berth/flux first),
## then 10,000 apps x 10 objects under one controller (berth only: Flux's
## 1,000-app sync already takes over 20 minutes), its heap held to 900 MiB as
## a container limit of 1 GiB would (--memory-limit auto); one table each
bench-scale:
	-./bench/flux/build.sh
	$(GO) run ./bench/controller -flux -raw-before -o bench/controller/results.md
	$(GO) run ./bench/controller -apps 10000 -namespaces 100 -steady 2m -memory-limit 900Mi -o bench/controller/results-10000.md

## image: the controller image (needs a Docker engine)
image:
	docker build -t berth:latest .

## lint: gofmt, go vet and staticcheck
lint: $(STATICCHECK)
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin $(TOOLS)
