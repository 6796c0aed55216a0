#!/usr/bin/env bash
# Installs a real Kubernetes control plane for the tests of `kubectl imagesync job|status` and
# `--from-cluster` (internal/kubetest), once per machine, and prints their paths as
#   export IMAGESYNC_ETCD=...
#   export IMAGESYNC_KUBE_APISERVER=...
#   export IMAGESYNC_KUBE_CONTROLLER_MANAGER=...
#   export IMAGESYNC_KUBE_SCHEDULER=...
#   export IMAGESYNC_KWOK=...
#   export IMAGESYNC_KUBELET=...
# on stdout (and nothing else). Progress goes to stderr. Called by scripts/test-deps.sh.
#
# - etcd: Debian's etcd-server package (apt-get) when no etcd is on PATH.
# - kube-apiserver, kube-controller-manager, kube-scheduler: `go install` refuses k8s.io/kubernetes
#   (its go.mod has replace directives), so they are built from a throwaway module outside the clone
#   that requires k8s.io/kubernetes and replaces every staging module k8s.io/X by k8s.io/X v0.<minor>.<patch>;
#   k8s.io/sample-cli-plugin and k8s.io/sample-controller are not served by the module proxy and
#   nothing needs them: they are replaced by empty local modules. Cold build ~10 min on 2 cores.
#   kubelet (the real node of internal/kubetest Options.Node) is built from the same module, with
#   CGO_ENABLED=0 like the others; a missing one is built alone (~1-2 min with a warm build cache).
# - kwok (fake node that completes pods): go install.
# Everything lands in ${XDG_CACHE_HOME:-$HOME/.cache}/imagesync-tools/<tool>-<version>/.
set -euo pipefail

KUBE_VERSION=v1.34.4
KWOK_VERSION=v0.8.0
CACHE="${IMAGESYNC_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/imagesync-tools}"
KUBE_DIR="$CACHE/kubernetes-$KUBE_VERSION"
KWOK_DIR="$CACHE/kwok-$KWOK_VERSION"

log() { printf 'kube-deps: %s\n' "$*" >&2; }

# shellcheck source=as-root.sh
. "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"

# --- etcd -------------------------------------------------------------------
ETCD="${IMAGESYNC_ETCD:-}"
if [ -z "$ETCD" ]; then
	ETCD="$(command -v etcd || true)"
fi
if [ -z "$ETCD" ]; then
	if command -v apt-get >/dev/null 2>&1; then
		log "installing etcd-server with apt-get"
		as_root apt-get update -qq >&2
		as_root env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends etcd-server >&2
		# The package may start a system etcd on :2379; the tests start their own on free ports.
		if command -v systemctl >/dev/null 2>&1; then as_root systemctl stop etcd >&2 2>/dev/null || true; fi
		if command -v service >/dev/null 2>&1; then as_root service etcd stop >&2 2>/dev/null || true; fi
		ETCD="$(command -v etcd || true)"
	fi
	[ -n "$ETCD" ] || { log "etcd not found and not installable (no apt-get): set IMAGESYNC_ETCD"; exit 1; }
else
	log "found $ETCD"
fi

# --- kwok (in the background: its compile overlaps the Kubernetes links below) ----------
KWOK="$KWOK_DIR/kwok"
kwok_pid=""
if [ -x "$KWOK" ]; then
	log "found $KWOK"
else
	log "building sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION into $KWOK_DIR"
	mkdir -p "$KWOK_DIR"
	(
		start=$(date +%s)
		GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOWORK=off GOBIN="$KWOK_DIR" \
			go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" >&2
		log "built kwok in $(($(date +%s) - start)) s"
	) &
	kwok_pid=$!
fi

# --- kube-apiserver, kube-controller-manager, kube-scheduler, kubelet --------
all_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
cmds=()
for c in "${all_cmds[@]}"; do [ -x "$KUBE_DIR/$c" ] || cmds+=("$c"); done
if [ ${#cmds[@]} -eq 0 ]; then
	log "found ${all_cmds[*]} in $KUBE_DIR"
else
	command -v go >/dev/null 2>&1 || { log "go not found, cannot build Kubernetes $KUBE_VERSION"; exit 1; }
	start=$(date +%s)
	log "building ${cmds[*]} $KUBE_VERSION into $KUBE_DIR (once per machine; ~10 min on 2 cores)"
	work="$(mktemp -d)"
	trap 'rm -rf "$work"' EXIT
	staging_version="v0.${KUBE_VERSION#v1.}"
	gomod="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
	[ -f "$gomod" ] || { log "cannot download k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
	{
		echo "module imagesync.invalid/kubetools"
		echo
		echo "go 1.24.0"
		echo
		echo "require k8s.io/kubernetes $KUBE_VERSION"
		echo
		echo "replace ("
		for m in $(sed -n 's/^[[:space:]]*\(k8s\.io\/[a-z0-9-]*\) => \.\/staging\/src\/.*/\1/p' "$gomod"); do
			case "$m" in
			k8s.io/sample-cli-plugin | k8s.io/sample-controller)
				mkdir -p "$work/empty/${m#k8s.io/}"
				printf 'module %s\n\ngo 1.24.0\n' "$m" >"$work/empty/${m#k8s.io/}/go.mod"
				echo "	$m => ./empty/${m#k8s.io/}"
				;;
			*) echo "	$m => $m $staging_version" ;;
			esac
		done
		echo ")"
	} >"$work/go.mod"
	mkdir -p "$KUBE_DIR" "$work/bin"
	ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
	ldflags="$ldflags -X k8s.io/component-base/version.gitMajor=1"
	ldflags="$ldflags -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
	pkgs=()
	for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
	(
		cd "$work"
		# One go build for all: shared packages compiled once, links in parallel.
		GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 GOWORK=off \
			go build -trimpath -ldflags "$ldflags" -o "$work/bin/" "${pkgs[@]}" >&2
	)
	for c in "${cmds[@]}"; do
		[ -x "$work/bin/$c" ] || { log "$c missing after go build"; exit 1; }
		mv "$work/bin/$c" "$KUBE_DIR/$c"
	done
	log "built ${cmds[*]} in $(($(date +%s) - start)) s"
fi

if [ -n "$kwok_pid" ]; then
	wait "$kwok_pid" || { log "building kwok failed"; exit 1; }
fi
[ -x "$KWOK" ] || { log "$KWOK missing after go install"; exit 1; }

echo "export IMAGESYNC_ETCD=$ETCD"
echo "export IMAGESYNC_KUBE_APISERVER=$KUBE_DIR/kube-apiserver"
echo "export IMAGESYNC_KUBE_CONTROLLER_MANAGER=$KUBE_DIR/kube-controller-manager"
echo "export IMAGESYNC_KUBE_SCHEDULER=$KUBE_DIR/kube-scheduler"
echo "export IMAGESYNC_KWOK=$KWOK"
echo "export IMAGESYNC_KUBELET=$KUBE_DIR/kubelet"
