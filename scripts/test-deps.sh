#!/usr/bin/env bash
# Installs the real registry servers the integration tests run against
# (internal/registrytest), and skopeo (an independent reader of the OCI
# layouts the layout tests write), when missing, and prints their paths as
#   export IMAGESYNC_REGISTRY_V2=...
#   export IMAGESYNC_REGISTRY_V3=...
#   export IMAGESYNC_SKOPEO=...
# and the real artifact clients the referrer tests drive (cosign, oras) as
#   export IMAGESYNC_COSIGN=...
#   export IMAGESYNC_ORAS=...
#   export IMAGESYNC_ETCD=... IMAGESYNC_KUBE_*=... IMAGESYNC_KWOK=... IMAGESYNC_KUBELET=...   (scripts/kube-deps.sh)
#   export IMAGESYNC_RUNC=... IMAGESYNC_CONTAINERD=... IMAGESYNC_CNI_BIN=...   (scripts/node-deps.sh)
# and Prometheus' server and promtool (the metrics test) as
#   export IMAGESYNC_PROMETHEUS=... IMAGESYNC_PROMTOOL=...
# on stdout (and nothing else), so that a Makefile/CI can do
#   eval "$(scripts/test-deps.sh)"
# Progress goes to stderr. Safe to run repeatedly.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
V2=/usr/bin/docker-registry
V3_VERSION=v3.0.0
# Built once per machine, outside the clone (CI runs in a fresh clone on the same machine).
CACHE="${IMAGESYNC_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagesync-tools}"
V3="$CACHE/distribution-$V3_VERSION/registry"

log() { printf 'test-deps: %s\n' "$*" >&2; }

# shellcheck source=as-root.sh
. "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"

# go_tool BIN PACKAGE@VERSION: go install into BIN's directory unless BIN exists already.
go_tool() {
	local bin=$1 pkg=$2
	if [ -x "$bin" ]; then
		log "found $bin"
		return 0
	fi
	command -v go >/dev/null 2>&1 || { log "go not found, cannot build $pkg"; exit 1; }
	log "building $pkg into $(dirname "$bin") (once per machine)"
	mkdir -p "$(dirname "$bin")"
	# Built into a temporary directory and moved: a killed build never leaves a half-written tool behind.
	local tmp start
	tmp=$(mktemp -d "$(dirname "$bin")/.build.XXXXXX")
	start=$(date +%s)
	GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN="$tmp" go install "$pkg" >&2
	mv -f "$tmp/$(basename "$bin")" "$bin"
	rmdir "$tmp"
	[ -x "$bin" ] || { log "$bin missing after go install"; exit 1; }
	log "built $(basename "$bin") in $(($(date +%s) - start)) s"
}

# The tools built from source build side by side, in the background, while
# the packages install and Kubernetes builds (scripts/kube-deps.sh): a cold
# machine otherwise leaves a core idle through every module download and
# every link, one tool after the other. wait_tools collects them.
tool_pids=()
tool_names=()
background_tool() {
	go_tool "$@" &
	tool_pids+=("$!")
	tool_names+=("$(basename "$1")")
}
wait_tools() {
	local i failed=0
	for i in "${!tool_pids[@]}"; do
		wait "${tool_pids[$i]}" || { log "building ${tool_names[$i]} failed"; failed=1; }
	done
	[ "$failed" = 0 ] || exit 1
}

STATICCHECK_VERSION=v0.8.2
STATICCHECK="$CACHE/staticcheck-$STATICCHECK_VERSION/staticcheck"
COSIGN_VERSION=v2.6.5
ORAS_VERSION=v1.3.6
COSIGN="$CACHE/cosign-$COSIGN_VERSION/cosign"
ORAS="$CACHE/oras-$ORAS_VERSION/oras"
background_tool "$V3" "github.com/distribution/distribution/v3/cmd/registry@$V3_VERSION"
background_tool "$STATICCHECK" "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
background_tool "$ORAS" "oras.land/oras/cmd/oras@$ORAS_VERSION"
background_tool "$COSIGN" "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION"

# --- distribution 2.8 (Debian's docker-registry) + htpasswd ----------------
if [ -x "$V2" ] && command -v htpasswd >/dev/null 2>&1; then
	log "found $V2 and htpasswd"
elif command -v apt-get >/dev/null 2>&1; then
	pkgs=()
	[ -x "$V2" ] || pkgs+=(docker-registry)
	command -v htpasswd >/dev/null 2>&1 || pkgs+=(apache2-utils)
	log "installing ${pkgs[*]} with apt-get"
	as_root apt-get update -qq >&2
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
	# The package may start a system registry on :5000; the tests do not want it.
	if [[ " ${pkgs[*]} " == *" docker-registry "* ]]; then
		if command -v systemctl >/dev/null 2>&1; then
			as_root systemctl stop docker-registry >&2 2>/dev/null || true
		fi
		if command -v service >/dev/null 2>&1; then
			as_root service docker-registry stop >&2 2>/dev/null || true
		fi
	fi
	[ -x "$V2" ] || { log "$V2 still missing after apt-get install"; exit 1; }
else
	log "no apt-get (macOS?): skipping Debian's docker-registry; distribution-2.8 tests will be skipped" \
		"unless IMAGESYNC_REGISTRY_V2 points at a 2.8 binary"
	command -v htpasswd >/dev/null 2>&1 || log "htpasswd not found: tests using Options.Htpasswd will be skipped"
fi

# --- shells for the completion tests, and tmux to drive them -----------------
# cmd/imagesync completes for real in bash, zsh and fish inside tmux.
shells=()
for tool in zsh fish tmux; do
	command -v "$tool" >/dev/null 2>&1 || shells+=("$tool")
done
if [ ${#shells[@]} -eq 0 ]; then
	log "found zsh, fish and tmux"
elif command -v apt-get >/dev/null 2>&1; then
	log "installing ${shells[*]} with apt-get"
	as_root apt-get update -qq >&2
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${shells[@]}" >&2
else
	log "no apt-get: ${shells[*]} missing; their completion tests will be skipped"
fi

# --- distribution v3, staticcheck (make test runs it), cosign and oras -------
# (referrer tests: signatures and SBOMs from the real clients): building in
# the background since the top (background_tool).

# --- skopeo (an independent reader of the OCI layouts and archives imagesync writes)
if command -v skopeo >/dev/null 2>&1; then
	log "found $(command -v skopeo)"
elif command -v apt-get >/dev/null 2>&1; then
	log "installing skopeo with apt-get"
	as_root apt-get update -qq >&2
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends skopeo >&2
	command -v skopeo >/dev/null 2>&1 || { log "skopeo still missing after apt-get install"; exit 1; }
else
	log "no apt-get: the layout tests that read with skopeo will be skipped unless skopeo is on PATH"
fi

# --- Prometheus and promtool (the metrics test scrapes sync --metrics-addr with a real server) ---
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
	log "found $(command -v prometheus) and $(command -v promtool)"
elif command -v apt-get >/dev/null 2>&1; then
	log "installing prometheus with apt-get"
	as_root apt-get update -qq >&2
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends prometheus >&2
	# The package may start a system Prometheus on :9090; the tests start their own.
	if command -v systemctl >/dev/null 2>&1; then
		as_root systemctl stop prometheus >&2 2>/dev/null || true
	fi
	if command -v service >/dev/null 2>&1; then
		as_root service prometheus stop >&2 2>/dev/null || true
	fi
	command -v prometheus >/dev/null 2>&1 || { log "prometheus still missing after apt-get install"; exit 1; }
else
	log "no apt-get: the Prometheus scrape test will be skipped unless prometheus and promtool are on PATH"
fi

# --- Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) ---
# For the tests of `kubectl imagesync job|status` and --from-cluster (internal/kubetest).
# Built once per machine (~10 min cold on 2 cores); IMAGESYNC_SKIP_KUBE=1 skips it (those tests then skip).
if [ "${IMAGESYNC_SKIP_KUBE:-}" = 1 ]; then
	log "IMAGESYNC_SKIP_KUBE=1: no Kubernetes control plane; its tests will be skipped"
else
	"$REPO/scripts/kube-deps.sh"
	# runc, containerd and the CNI plugins (Debian's) for the real node and the image's container test.
	"$REPO/scripts/node-deps.sh"
fi

wait_tools
echo "export IMAGESYNC_STATICCHECK=$STATICCHECK"
echo "export IMAGESYNC_REGISTRY_V2=$V2"
echo "export IMAGESYNC_REGISTRY_V3=$V3"
if command -v skopeo >/dev/null 2>&1; then echo "export IMAGESYNC_SKOPEO=$(command -v skopeo)"; fi
echo "export IMAGESYNC_COSIGN=$COSIGN"
echo "export IMAGESYNC_ORAS=$ORAS"
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
	echo "export IMAGESYNC_PROMETHEUS=$(command -v prometheus)"
	echo "export IMAGESYNC_PROMTOOL=$(command -v promtool)"
fi
