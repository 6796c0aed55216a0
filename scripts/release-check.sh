#!/usr/bin/env bash
# Checks the release configuration without building or publishing anything
# (`make release-check` calls it):
#   - `goreleaser check` on .goreleaser.yaml (goreleaser v2, pinned below);
#   - `validate-krew-manifest` on krew.yaml (structure, selectors, sha256
#     format, bin/files), without installing the plugin: the manifest holds
#     placeholder URIs and checksums until a release fills them in;
#   - a snapshot release with the container image (kos), where it can be built:
#     goreleaser's snapshot mode has ko pull the base image
#     (cgr.dev/chainguard/static) from its registry and load the image into a
#     local Docker daemon (ko's snapshot publisher). Without a reachable Docker
#     daemon the snapshot is skipped, saying so; IMAGESYNC_RELEASE_SNAPSHOT=1
#     makes it required, =0 skips it. (The tests build an equivalent image
#     offline from the same static binary: internal/imagetest.)
# Installs both tools into <repo>/bin when missing. Progress goes to stderr.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

GORELEASER_VERSION=v2.15.1
KREW_VERSION=v0.4.3                  # validate-krew-manifest (sigs.k8s.io/krew)
BIN="$REPO/bin"
GORELEASER="$BIN/goreleaser"
VALIDATE_KREW="$BIN/validate-krew-manifest"

log() { printf 'release-check: %s\n' "$*" >&2; }

mkdir -p "$BIN"

# --- goreleaser ------------------------------------------------------------
# Reinstall when the installed binary is not the pinned version.
have=""
if [ -x "$GORELEASER" ]; then
	have=$("$GORELEASER" --version 2>/dev/null | sed -n 's/^GitVersion:[[:space:]]*v\{0,1\}//p' || true)
fi
if [ "$have" = "${GORELEASER_VERSION#v}" ]; then
	log "found $GORELEASER ($GORELEASER_VERSION)"
else
	[ -z "$have" ] || log "$GORELEASER is v$have, want $GORELEASER_VERSION"
	log "installing goreleaser $GORELEASER_VERSION into $BIN (large; takes a few minutes)"
	GOFLAGS=-buildvcs=false GOBIN="$BIN" \
		go install "github.com/goreleaser/goreleaser/v2@$GORELEASER_VERSION"
fi

# --- validate-krew-manifest ------------------------------------------------
if [ -x "$VALIDATE_KREW" ]; then
	log "found $VALIDATE_KREW"
else
	log "installing validate-krew-manifest@$KREW_VERSION into $BIN"
	GOFLAGS=-buildvcs=false GOBIN="$BIN" \
		go install "sigs.k8s.io/krew/cmd/validate-krew-manifest@$KREW_VERSION"
fi

# --- checks ----------------------------------------------------------------
log "goreleaser check (.goreleaser.yaml)"
"$GORELEASER" check

# The validator insists that the file be named <metadata.name>.yaml (as in
# krew-index: plugins/imagesync.yaml), so it checks a copy under that name.
# -skip-install: do not download the archives (placeholders until a release).
plugin=$(awk '/^metadata:/ {m=1; next} m && /^[^ #]/ {m=0} m && $1 == "name:" {print $2; exit}' krew.yaml)
if [ -z "$plugin" ]; then log "krew.yaml: no metadata.name"; exit 1; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp krew.yaml "$tmp/$plugin.yaml"
log "validate-krew-manifest (krew.yaml, checked as $plugin.yaml)"
"$VALIDATE_KREW" -manifest "$tmp/$plugin.yaml" -skip-install

# --- snapshot image ----------------------------------------------------------
snapshot="${IMAGESYNC_RELEASE_SNAPSHOT:-auto}"
if [ "$snapshot" = 0 ]; then
	log "IMAGESYNC_RELEASE_SNAPSHOT=0: no snapshot image"
elif [ "$snapshot" = 1 ] || docker info >/dev/null 2>&1; then
	# Only the image: the archives' 24 binaries are not what this checks.
	log "goreleaser release --snapshot (the container image, loaded into the Docker daemon)"
	"$GORELEASER" release --snapshot --clean --skip=archive,sbom,sign,publish,validate
	log "snapshot image built: docker images goreleaser.ko.local/*"
else
	log "no snapshot image: goreleaser's ko snapshot loads the image into a Docker daemon and pulls its base" \
		"cgr.dev/chainguard/static from the network; no Docker daemon answers here (docker info failed)." \
		"IMAGESYNC_RELEASE_SNAPSHOT=1 to require it."
fi

log "OK"
