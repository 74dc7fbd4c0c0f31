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

# netns-status prints whether the network-namespace reachability matrix
# (e2e TestReachability, docs/reachability.md) runs or skips here, because
# go test does not show a passing package's skips.
define netns-status
if [ "$$(id -u)" != 0 ]; then echo "netns: reachability matrix (e2e TestReachability) SKIPPED: not root (it needs network namespaces and nftables)"; \
elif ! command -v ip >/dev/null 2>&1 || ! command -v nft >/dev/null 2>&1; then echo "netns: reachability matrix SKIPPED: ip or nft missing (apt-get install iproute2 nftables)"; \
else echo "netns: reachability matrix runs$$(command -v turnserver >/dev/null 2>&1 || echo ' (coturn cases SKIPPED: turnserver missing, apt-get install coturn)')"; fi
endef

## test: gofmt check, go vet, wire_gen.go up to date, then every test with the race detector (never from the test cache: e2e builds the binary itself); says whether the network-namespace matrix ran
.PHONY: test
test: lint wire-check
	@$(netns-status)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	@$(netns-status)

## netns: only the network-namespace tests (lab self-tests and the reachability matrix), verbosely; needs root, ip, nft (coturn for its cases)
.PHONY: netns
netns:
	@$(netns-status)
	$(GO) test -race -count=1 -parallel 12 -timeout 10m -v ./e2e/internal/netlab/
	$(GO) test -race -count=1 -parallel 12 -timeout 10m -v -run '^(TestReachability|TestCoturnRelaysWithRESTCredentials)$$' ./e2e/

## soak: chaos soak (root): registry + 6 jsonrpc clients in netns NATs, seeded traffic and faults, ledger table; SOAK=30m (default 10m) SOAK_SEED=N to replay; never part of make test (RELIABILITY.md)
.PHONY: soak
soak:
	@$(netns-status)
	SOAK=$(or $(SOAK),10m) SOAK_SEED=$(SOAK_SEED) SOAK_CLIENTS=$(SOAK_CLIENTS) $(GO) test -tags soak -count=1 -timeout 0 -v -run '^TestSoak$$' ./e2e/

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

## bench: every benchmark behind BENCHMARKS.md (registry, messaging, storage, files, reachability); takes a while
.PHONY: bench
bench: bench-registry bench-cluster bench-messaging bench-storage bench-files bench-relay bench-reach

## bench-registry: lookups/s, registrations/s, presence fan-out to 1k and 10k watchers, memory per watcher
.PHONY: bench-registry
bench-registry:
	$(GO) test -run '^$$' -bench 'Lookup|Register' -benchtime 3s ./adapters/registry/
	$(GO) test -run '^$$' -bench Fanout -benchtime 30x -timeout 30m ./adapters/registry/
	$(GO) test -run '^$$' -bench Mailbox -benchtime 3s ./adapters/registry/

## bench-cluster: one registry node on the file store vs three on one redis-server: lookups/s, registrations/s and Redis commands each, fan-out p99 and memory per watcher (CHATX_CLUSTER_WATCHERS per node, default 5000; needs redis-server)
.PHONY: bench-cluster
bench-cluster:
	$(GO) test -run '^$$' -bench 'ClusterLookup' -benchtime 3s ./bench/
	$(GO) test -run '^$$' -bench 'ClusterRegister' -benchtime 2000x ./bench/
	$(GO) test -run '^$$' -bench 'ClusterFanout' -benchtime 30x -timeout 30m ./bench/

## bench-messaging: messages/s and send-to-delivered latency, link only and end to end with SQLite persistence, and sends/s over JSON-RPC
.PHONY: bench-messaging
bench-messaging:
	$(GO) test -run '^$$' -bench Pipelined -benchtime 200000x ./adapters/tcp/
	$(GO) test -run '^$$' -bench SendToDelivered -benchtime 3000x ./adapters/tcp/
	$(GO) test -run '^$$' -bench 'Messaging|JSONRPCSend' -benchtime 1x -timeout 20m ./bench/

## bench-storage: durable writes/s of the SQLite store, serial and with concurrent callers
.PHONY: bench-storage
bench-storage:
	$(GO) test -run '^$$' -bench . -benchtime 3x -benchmem ./adapters/storage/

## bench-files: 1 GiB over loopback: the whole client path and the transport alone vs bare quic-go and TCP+TLS; peak RSS for 1 and 4 GiB
.PHONY: bench-files
bench-files:
	$(GO) test -run '^$$' -bench FileTransfer -benchtime 5x -timeout 30m ./bench/
	$(GO) run ./adapters/udp/internal/filebench -size 1GiB -rss 1GiB,4GiB -repeat 5 -dir $${TMPDIR:-/tmp}

## bench-stripes: one file striped over 1, 2 and 4 connections (QUIC; STRIPE_PATH=tcp: TLS over TCP), sender and receiver as two processes, pinned to one core each (taskset) and not, interleaved rounds: MB/s and CPU s per GiB per side (issue 15 items 2, 3)
.PHONY: bench-stripes
bench-stripes:
	$(GO) run ./adapters/udp/internal/filebench -stripes 1,2,4 -stripe-path $(or $(STRIPE_PATH),udp) -pin both -size 1GiB -repeat 5 -dir $${TMPDIR:-/tmp}

## bench-compare: chatx beside croc and magic-wormhole, 1 GiB over loopback, 4 interleaved rounds, medians (installs croc v10.7.0 unless CROC=PATH, and magic-wormhole when root; never part of make test)
.PHONY: bench-compare
bench-compare:
	GO="$(GO)" bash bench/compare.sh

## bench-reach: time to first message and 64 MiB file throughput both ways per reachability case, one case at a time, relayed next to direct (root)
.PHONY: bench-reach
bench-reach:
	@$(netns-status)
	$(GO) test -count=1 -timeout 30m -v -run '^TestReachability$$' ./e2e/ -args -reach.bench

## bench-relay: QUIC throughput on loopback direct, through the embedded TURN relay and through coturn, in one run
.PHONY: bench-relay
bench-relay:
	$(GO) test -run '^$$' -bench QUICThroughput -benchtime 30x -count 3 ./adapters/relay/

## clean: remove build output
.PHONY: clean
clean:
	rm -rf bin
