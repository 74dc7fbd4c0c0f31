#!/usr/bin/env bash
# make bench-compare: installs what the side-by-side benchmark needs — croc
# (CROC=PATH brings one; otherwise github.com/schollz/croc/v10 v10.7.0, the
# version the module proxy serves, is built into $CHATX_BENCH_TOOLS; croc
# 11.x, the reference, is built from its repository as BENCHMARKS.md
# says and passed as CROC=/path/to/croc11) and
# magic-wormhole with a mailbox server and a transit relay (Debian
# packages, when root) — then runs e2e's TestCompare. Never run by make test.
set -euo pipefail
GO=${GO:-go}
tools=${CHATX_BENCH_TOOLS:-${TMPDIR:-/tmp}/chatx-bench-tools}
croc=${CROC:-}
if [ -z "$croc" ]; then
	if [ ! -x "$tools/croc" ]; then
		echo "building croc v10.7.0 into $tools (CROC=PATH to use another)" >&2
		mkdir -p "$tools"
		GOBIN="$tools" GOFLAGS=-mod=mod "$GO" install github.com/schollz/croc/v10@v10.7.0
	fi
	croc="$tools/croc"
fi
if ! command -v wormhole >/dev/null || ! { command -v twist || command -v twist3; } >/dev/null ||
	! dpkg -s python3-magic-wormhole-mailbox-server magic-wormhole-transit-relay >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq magic-wormhole \
			python3-magic-wormhole-mailbox-server magic-wormhole-transit-relay >/dev/null
	else
		echo "magic-wormhole, its mailbox server or transit relay missing and not root: it is skipped" >&2
	fi
fi
# go test runs in e2e/: the table's file is named from here.
out=${CHATX_COMPARE_OUT:-bench/results-compare.md}
case $out in /*) ;; *) out="$PWD/$out" ;; esac
echo "machine: $(nproc) CPUs, $(uname -sr); load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exec "$GO" test -count=1 -timeout 3h -v -run '^TestCompare$' ./e2e/ -args -compare \
	-compare.croc "$croc" -compare.mib "${CHATX_COMPARE_MIB:-1024}" -compare.rounds "${CHATX_COMPARE_ROUNDS:-4}" \
	-compare.out "$out"
