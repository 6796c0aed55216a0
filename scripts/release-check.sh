#!/usr/bin/env bash
# Checks the release configuration without building or publishing anything
# (`make release-check` calls it):
#   - `goreleaser check` on .goreleaser.yaml (goreleaser v2, pinned below);
#   - `validate-krew-manifest` on krew.yaml (structure, selectors, sha256
#     format, bin/files), without installing the plugin: the manifest holds
#     placeholder URIs and checksums until a release fills them in.
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

log "OK"
