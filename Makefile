# sidecar-executor build, test and benchmark targets.

GO          ?= go
BINARY      := bin/sidecar-executor
MESOS_LOCAL := bin/mesos-local
# The demo: the web-server example for a few seconds, then KILL. -timeout-ok
# makes that end exit 0 if the task was running and healthy when killed.
# cmd/mesos-local's end-to-end test runs these same arguments, with a longer
# -timeout for loaded machines.
DEMO_ARGS   := -timeout 8s -timeout-ok examples/web-server.json
TEST_IMAGE  := sidecar-executor/busybox:1.35
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_FLAGS  ?= -race -count=1 -timeout 20m
# The version the binary reports (sidecar-executor version, its first log
# line): git describe of the tree, "dev" outside a git checkout.
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)

# Fuzz targets, as package:target. make fuzz runs each for FUZZTIME; make
# test runs each briefly so that regressions show.
FUZZ_TARGETS := .:FuzzBuildContainerSpec .:FuzzSplitShellCommand .:FuzzLookupServiceStatus \
	.:FuzzParseVaultReference .:FuzzLoadConfig .:FuzzRegistryForImage .:FuzzAdmissionHostPaths \
	.:FuzzRedactSecretsIn .:FuzzReadAgentHostnames .:FuzzParseUpstreamLine .:FuzzDockerParameter \
	.:FuzzParseOperatorLine
FUZZTIME ?= 60s

.PHONY: all build dist mesos-local demo test test-image bench lint vet clean fuzz

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags '$(LDFLAGS)' -o $(BINARY) .

# The release operators install: dist/sidecar-executor-$(VERSION)-linux-amd64.tar.gz
# with the static binary, executor.sh, a sample operator file, README and
# SECURITY (scripts/dist.sh).
dist:
	GO=$(GO) bash scripts/dist.sh '$(VERSION)'

# The local agent: runs one task through the executor without a cluster.
mesos-local:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(MESOS_LOCAL) ./cmd/mesos-local

# See the executor work on this machine: needs only Go and a Docker engine.
demo: build mesos-local test-image
	$(MESOS_LOCAL) -executor $(BINARY) $(DEMO_ARGS)

# The tests drive the real Docker engine with an image built locally.
test-image:
	bash scripts/test-image.sh $(TEST_IMAGE)

# go test alone skips the tests that need Docker when no engine answers;
# here, as under CI=true, that is a failure.
test: test-image vet
	SIDECAR_EXECUTOR_REQUIRE_DOCKER=1 $(GO) test $(TEST_FLAGS) ./...
	$(MAKE) fuzz FUZZTIME=2s

fuzz:
	@set -e; for target in $(FUZZ_TARGETS); do \
		pkg=$${target%%:*}; name=$${target#*:}; \
		echo "fuzz $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

vet:
	$(GO) vet ./...

lint: vet
	$(GO) run $(STATICCHECK) ./...

# Go benchmarks, then the scenario benchmark (bench/), which builds the
# executor itself, drives it against the real engine and rewrites the
# generated part of BENCHMARKS.md. BENCH_FLAGS passes options, e.g.
# BENCH_FLAGS='-n 50 -k 100'.
BENCH_FLAGS ?=
bench: test-image
	@mkdir -p bin
	$(GO) test -run '^$$' -bench . -benchmem ./... > bin/gobench.txt || { cat bin/gobench.txt; exit 1; }
	@cat bin/gobench.txt
	$(GO) run ./bench -gobench bin/gobench.txt -samples bin/bench-samples.json -out BENCHMARKS.md $(BENCH_FLAGS)

clean:
	rm -rf bin dist
	-docker ps -aq --filter label=sidecar-executor.test | xargs -r docker rm -f
	-docker ps -aq --filter label=sidecar-executor.bench | xargs -r docker rm -f
	-docker ps -aq --filter label=sidecar-executor-bench | xargs -r docker rm -f
