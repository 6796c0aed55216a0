#!/usr/bin/env bash
# Installs the peer tools `make bench` compares imagesync with, when missing:
#   crane, regsync, image-syncer  -> <repo>/bin (go install, pinned versions)
#   skopeo                        -> Debian's package (apt-get, as root only)
# A peer that cannot be installed is skipped with a message; the benchmark then
# reports it as missing. Progress goes to stderr. Safe to run repeatedly.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$REPO/bin"
GO="${GO:-go}"

# Pinned versions. crane matches go-containerregistry in go.mod. regsync:
# the newest regclient tag, which builds with go 1.26. image-syncer: v1.5.2
# is the v1.5.x tag the Go module proxy serves (it answers 403 Forbidden for
# v1.5.0, v1.5.1 and v1.5.3-v1.5.5).
CRANE_VERSION=v0.22.1
REGSYNC_VERSION=v0.11.7
IMAGE_SYNCER_VERSION=v1.5.2

log() { printf 'install-peers: %s\n' "$*" >&2; }

mkdir -p "$BIN"

go_install() { # name module@version
	local name=$1 pkg=$2
	if [ -x "$BIN/$name" ]; then
		log "found $BIN/$name"
		return 0
	fi
	log "go install $pkg"
	if GOBIN="$BIN" GOFLAGS=-buildvcs=false CGO_ENABLED=0 "$GO" install "$pkg" >&2; then
		log "installed $BIN/$name"
	else
		log "SKIP $name: go install $pkg failed (see above); the benchmark will report it as missing"
	fi
}

go_install crane "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION"
go_install regsync "github.com/regclient/regclient/cmd/regsync@$REGSYNC_VERSION"
# image-syncer: `go install module@version` also asks the proxy for the module's
# version list (to print deprecation notices), and the proxy answers that with
# 403 Forbidden, which makes go install fail although v1.5.2 itself is served.
# So when go install fails, build the same module version from a throwaway
# module that requires it (its own go.sum pins the dependencies).
if [ ! -x "$BIN/image-syncer" ]; then
	go_install image-syncer "github.com/AliyunContainerService/image-syncer@$IMAGE_SYNCER_VERSION" 2>/dev/null
fi
if [ ! -x "$BIN/image-syncer" ]; then
	log "go install failed; building image-syncer $IMAGE_SYNCER_VERSION from a throwaway module"
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	if (
		cd "$tmp" &&
			dir="$(GOFLAGS=-mod=mod "$GO" mod download -json "github.com/AliyunContainerService/image-syncer@$IMAGE_SYNCER_VERSION" |
				sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" &&
			[ -n "$dir" ] &&
			printf 'module imagesync-bench-peer\n\ngo 1.20\n\nrequire github.com/AliyunContainerService/image-syncer %s\n' \
				"$IMAGE_SYNCER_VERSION" >go.mod &&
			cp "$dir/go.sum" go.sum && chmod u+w go.sum &&
			GOFLAGS='-buildvcs=false -mod=mod' CGO_ENABLED=0 "$GO" build -o "$BIN/image-syncer" \
				github.com/AliyunContainerService/image-syncer >&2
	); then
		log "installed $BIN/image-syncer"
	else
		log "SKIP image-syncer: it does not build here (see above); the benchmark will report it as missing"
	fi
else
	log "found $BIN/image-syncer"
fi

if command -v skopeo >/dev/null 2>&1; then
	log "found $(command -v skopeo)"
elif ! command -v apt-get >/dev/null 2>&1; then
	log "SKIP skopeo: no apt-get on this machine (install skopeo yourself to include it)"
elif [ "$(id -u)" -ne 0 ]; then
	log "SKIP skopeo: apt-get needs root (run: sudo apt-get install -y skopeo)"
else
	log "apt-get install skopeo"
	if apt-get update -qq >&2 &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends skopeo >&2; then
		log "installed $(command -v skopeo)"
	else
		log "SKIP skopeo: apt-get install failed"
	fi
fi
exit 0
