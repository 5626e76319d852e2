GO ?= go
BIN := bin

.PHONY: build test lint up bench fuzz

build:
	$(GO) build -o $(BIN)/ ./cmd/... ./samples/bookinfo/cmd/...

# The README's test command. Unit, fuzz-seed and end-to-end tests, race detector on.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

up:
	$(GO) run ./cmd/mast up

# Benchmarks (not part of CI): the control plane's and the data plane's quick
# modes, a few minutes each; BENCH=full runs every combination with repeats.
# Each installs what it needs (fortio, Caddy with go install into
# ~/.cache/mast-bench; nginx and HAProxy with apt-get) and prints its table;
# results go to bench/results/.
BENCH ?= quick
bench:
	$(GO) run ./bench/controlplane/cmd/cpbench -$(BENCH)
	$(GO) run ./bench/dataplane/cmd/dpbench -$(BENCH)

# Short fuzzing runs of every fuzz target (not part of CI).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep ^Fuzz); do \
	    $(GO) test -run=^$$ -fuzz=^$$f$$ -fuzztime=20s $$pkg || exit 1; \
	  done; \
	done
