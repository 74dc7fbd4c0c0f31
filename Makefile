# ChatX — secure peer-to-peer chat and file transfer for the terminal.
# `make` alone lists the targets.

GO        ?= go
BIN       ?= bin/chatx
PKGS      ?= ./...
BENCHTIME ?= 1x
export GOTOOLCHAIN ?= local

.DEFAULT_GOAL := help

## help: list the targets
.PHONY: help
help:
	@echo "ChatX make targets:"
	@awk 'BEGIN{FS=": "} /^## /{sub(/^## /,""); split($$0,a,": "); printf "  %-12s %s\n", a[1], substr($$0, length(a[1])+3)}' $(MAKEFILE_LIST)

## build: build the chatx binary into bin/
.PHONY: build
build:
	$(GO) build -trimpath -o $(BIN) ./cmd/chatx

## run: run the terminal client (ARGS="--name alice --registry https://host:5000")
.PHONY: run
run: build
	./$(BIN) $(ARGS)

## registry: run a registry server on :5000 with data in ./registry-data
.PHONY: registry
registry: build
	./$(BIN) registry --listen :5000 --data ./registry-data

## demo: start a local registry and a second peer, then open the client to chat and send files on one machine
.PHONY: demo
demo: build
	./$(BIN) demo

## wire: regenerate wire_gen.go from wire.go
.PHONY: wire
wire:
	$(GO) tool wire gen .

## wire-check: fail when wire_gen.go is stale
.PHONY: wire-check
wire-check:
	@$(GO) tool wire diff . >/dev/null 2>&1 || { $(GO) tool wire diff .; echo "wire_gen.go is stale: run 'make wire' and commit it"; exit 1; }

## fmt-check: fail when a Go file is not gofmt-formatted
.PHONY: fmt-check
fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

## lint: gofmt check and go vet
.PHONY: lint
lint: fmt-check
	$(GO) vet $(PKGS)

## test: gofmt check, go vet, wire_gen.go up to date, then every test with the race detector
.PHONY: test
test: lint wire-check
	$(GO) test -race -timeout 15m $(PKGS)

## fuzz: run each fuzz target for FUZZTIME (default 30s)
.PHONY: fuzz
fuzz:
	@for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs grep -ho '^func Fuzz[A-Za-z0-9_]*' | sort -u | sed 's/func //'); do \
	  pkg=$$(dirname $$(grep -rl --include='*_test.go' "^func $$spec(" . | head -1)); \
	  echo "== $$spec in $$pkg"; $(GO) test $$pkg -run '^$$' -fuzz "^$$spec$$" -fuzztime $${FUZZTIME:-30s} || exit 1; \
	done

## bench: run the benchmarks of every part and print the figures for BENCHMARKS.md
.PHONY: bench
bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -benchmem -timeout 60m ./...

## clean: remove build output
.PHONY: clean
clean:
	rm -rf bin
