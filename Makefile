# sidecar-executor build, test and benchmark targets.

GO          ?= go
BINARY      := bin/sidecar-executor
TEST_IMAGE  := sidecar-executor/busybox:1.35
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_FLAGS  ?= -race -count=1 -timeout 20m

.PHONY: all build test test-image bench lint vet clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BINARY) .

# The tests drive the real Docker engine with an image built locally.
test-image:
	bash scripts/test-image.sh $(TEST_IMAGE)

test: test-image vet
	$(GO) test $(TEST_FLAGS) ./...

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
	rm -rf bin
	-docker ps -aq --filter label=sidecar-executor.test | xargs -r docker rm -f
	-docker ps -aq --filter label=sidecar-executor.bench | xargs -r docker rm -f
