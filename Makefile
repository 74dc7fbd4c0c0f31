# ChatX — secure peer-to-peer chat and file transfer for the terminal.
# `make` alone lists the targets.

GO        ?= go
BIN       ?= bin/chatx
PKGS      ?= ./...
export GOTOOLCHAIN ?= local

.DEFAULT_GOAL := help

## help: list the targets
.PHONY: help
help:
	@echo "ChatX make targets:"
	@awk 'BEGIN{FS=": "} /^## /{sub(/^## /,""); split($$0,a,": "); printf "  %-16s %s\n", a[1], substr($$0, length(a[1])+3)}' $(MAKEFILE_LIST)

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

## test: gofmt check, go vet, wire_gen.go up to date, then every test with the race detector (never from the test cache: e2e builds the binary itself)
.PHONY: test
test: lint wire-check
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## fuzz: run every fuzz target for FUZZTIME each (default 30s)
.PHONY: fuzz
fuzz:
	@set -e; for file in $$(git grep -l '^func Fuzz' -- '*_test.go'); do \
	  pkg=./$$(dirname $$file); \
	  for target in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$file); do \
	    echo "== $$target ($$pkg)"; \
	    $(GO) test $$pkg -run '^$$' -fuzz "^$$target$$" -fuzztime $${FUZZTIME:-30s}; \
	  done; \
	done

## bench: every benchmark behind BENCHMARKS.md (registry, messaging, storage, files); takes a while
.PHONY: bench
bench: bench-registry bench-messaging bench-storage bench-files bench-relay

## bench-registry: lookups/s, registrations/s, presence fan-out to 1k and 10k watchers, memory per watcher
.PHONY: bench-registry
bench-registry:
	$(GO) test -run '^$$' -bench 'Lookup|Register' -benchtime 3s ./adapters/registry/
	$(GO) test -run '^$$' -bench Fanout -benchtime 30x -timeout 30m ./adapters/registry/

## bench-messaging: messages/s and send-to-delivered latency, link only and end to end with SQLite persistence
.PHONY: bench-messaging
bench-messaging:
	$(GO) test -run '^$$' -bench Pipelined -benchtime 200000x ./adapters/tcp/
	$(GO) test -run '^$$' -bench SendToDelivered -benchtime 3000x ./adapters/tcp/
	$(GO) test -run '^$$' -bench Messaging -benchtime 1x -timeout 20m ./bench/

## bench-storage: durable writes/s of the SQLite store, serial and with concurrent callers
.PHONY: bench-storage
bench-storage:
	$(GO) test -run '^$$' -bench . -benchtime 3x -benchmem ./adapters/storage/

## bench-files: 1 GiB over loopback: the whole client path and the transport alone vs bare quic-go and TCP+TLS; peak RSS for 1 and 4 GiB
.PHONY: bench-files
bench-files:
	$(GO) test -run '^$$' -bench FileTransfer -benchtime 5x -timeout 30m ./bench/
	$(GO) run ./adapters/udp/internal/filebench -size 1GiB -rss 1GiB,4GiB -repeat 5 -dir $${TMPDIR:-/tmp}

## bench-relay: QUIC throughput on loopback direct, through the embedded TURN relay and through coturn, in one run
.PHONY: bench-relay
bench-relay:
	$(GO) test -run '^$$' -bench QUICThroughput -benchtime 30x -count 3 ./adapters/relay/

## clean: remove build output
.PHONY: clean
clean:
	rm -rf bin
