GO ?= go
BIN := bin

.PHONY: build test lint up bench fuzz proto

# Release build: static (pure-Go resolver, no libc mapped), no debug info or
# local paths, and gRPC without golang.org/x/net/trace, whose html/template
# import disables the linker's dead-method elimination. For mast-proxy these
# flags take the binary from 35 MB to 15 MB and its resident memory by about
# 6 MB (bench/proxymem).
BUILDFLAGS ?= -tags grpcnotrace -trimpath -ldflags='-s -w'

build:
	CGO_ENABLED=0 $(GO) build $(BUILDFLAGS) -o $(BIN)/ ./cmd/... ./samples/bookinfo/cmd/...

# The README's test command. Unit, fuzz-seed and end-to-end tests, race detector on.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

# staticcheck v0.7.0 (newer releases are not served by the module proxy here).
# SA1019 is off: Mast honours deprecated Istio and Envoy fields on purpose.
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@[ -x $(STATICCHECK) ] || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.7.0
	$(STATICCHECK) -checks 'all,-SA1019,-ST1000,-ST1003,-ST1005' ./...

# Builds once (bin/), then runs the mesh from the binaries: later runs start in seconds.
up: build
	$(BIN)/mast up

# Benchmarks (not part of CI): the control plane's and the data plane's quick
# modes, a few minutes each; BENCH=full runs every combination with repeats.
# Each installs what it needs (fortio, Caddy with go install into
# ~/.cache/mast-bench; nginx and HAProxy with apt-get) and prints its table;
# results go to bench/results/.
BENCH ?= quick
bench:
	$(GO) run ./bench/controlplane/cmd/cpbench -$(BENCH)
	$(GO) run ./bench/dataplane/cmd/dpbench -$(BENCH)

# Every fuzz target (each FuzzXxx in a _test.go) for FUZZTIME each, e.g.
# make fuzz FUZZTIME=5s. Their seed corpora run in `make test` anyway.
# Targets are found by grep, not `go test -list`, which would compile every
# package's tests once more. FUZZMINIMIZE bounds the minimizing of each new
# interesting input (go's default, 60s, outlasts FUZZTIME: FuzzReadRequest's
# workers then show 0 execs/s while they minimize a few-hundred-byte input).
FUZZTIME ?= 20s
FUZZMINIMIZE ?= 2s
fuzz:
	@set -e; for f in $$(git ls-files '*_test.go' | xargs grep -l '^func Fuzz'); do \
	  dir=./$$(dirname $$f); \
	  for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
	    echo "== $$dir $$t ($(FUZZTIME))"; \
	    $(GO) test -run='^$$' -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZE) $$dir; \
	  done; \
	done

# Regenerate the Go code of Mast's copy of Istio's Mixer protos (needs protoc).
proto:
	./scripts/gen-mixer-proto.sh
