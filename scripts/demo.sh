#!/usr/bin/env bash
# `make demo`: two local distribution/v3 registries on loopback, a seeded
# source, one `imagesync sync` with examples/images.yaml, then what arrived,
# with digests. Needs only Go (and curl); works on Linux and macOS.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
# The same per-machine build of distribution v3 that `make test` uses.
REGISTRY="${XDG_CACHE_HOME:-$HOME/.cache}/imagesync-tools/distribution-v3.0.0/registry"
if [ ! -x "$REGISTRY" ]; then
	echo "building distribution/v3 registry into $(dirname "$REGISTRY") (once)" >&2
	mkdir -p "$(dirname "$REGISTRY")"
	GOFLAGS=-buildvcs=false GOBIN="$(dirname "$REGISTRY")" go install github.com/distribution/distribution/v3/cmd/registry@v3.0.0
fi
[ -x bin/imagesync ] || CGO_ENABLED=0 go build -o bin/imagesync ./cmd/imagesync

WORK="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
	echo $((20000 + RANDOM % 20000)); }

start_registry() { # name port
	mkdir -p "$WORK/$1"
	cat >"$WORK/$1.yml" <<YAML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $WORK/$1}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$2, secret: demo-$RANDOM}
YAML
	OTEL_TRACES_EXPORTER=none "$REGISTRY" serve "$WORK/$1.yml" >"$WORK/$1.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 100); do
		curl -fsS "http://127.0.0.1:$2/v2/" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "registry $1 did not start:" >&2; cat "$WORK/$1.log" >&2; exit 1
}

SRC_PORT=$(free_port); DST_PORT=$(free_port)
start_registry source "$SRC_PORT"
start_registry mirror "$DST_PORT"
export SRC="127.0.0.1:$SRC_PORT" DST="127.0.0.1:$DST_PORT"
echo "== source $SRC, destination $DST"

echo "== seeding the source"
go run ./examples/demoseed seed "$SRC"

echo "== imagesync --images examples/images.yaml"
bin/imagesync --images examples/images.yaml --proc 8 --ledger "$WORK/ledger.jsonl"

echo "== again: nothing to copy"
bin/imagesync --images examples/images.yaml --ledger "$WORK/ledger.jsonl"

echo "== what arrived"
go run ./examples/demoseed list "$DST" mirror/alpine mirror/alpine-stable mirror/multi team/multi
echo "== the source, for comparison"
go run ./examples/demoseed list "$SRC" library/alpine library/multi
