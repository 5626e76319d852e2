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

# Short fuzzing runs of every fuzz target (not part of CI).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep ^Fuzz); do \
	    $(GO) test -run=^$$ -fuzz=^$$f$$ -fuzztime=20s $$pkg || exit 1; \
	  done; \
	done
