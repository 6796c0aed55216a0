#!/usr/bin/env bash
# Installs what a real Kubernetes node needs to run the tests' pods (internal/kubetest
# Options.Node, internal/imagetest.Run): Debian's runc, containerd and CNI plugins, with apt-get,
# when missing, and prints their paths as
#   export IMAGESYNC_RUNC=...
#   export IMAGESYNC_CONTAINERD=...
#   export IMAGESYNC_CNI_BIN=...
# on stdout (and nothing else). Progress goes to stderr. Called by scripts/test-deps.sh; the
# kubelet itself is built by scripts/kube-deps.sh. Nothing is started here: the tests start
# containerd with their own root, state and socket in a temporary directory, and stop it.
# The Debian package may try to start a system containerd; it is stopped again.
set -euo pipefail

log() { printf 'node-deps: %s\n' "$*" >&2; }

# shellcheck source=as-root.sh
. "$(dirname "${BASH_SOURCE[0]}")/as-root.sh"

CNI_BIN=/usr/lib/cni
pkgs=()
command -v runc >/dev/null 2>&1 || pkgs+=(runc)
command -v containerd >/dev/null 2>&1 || pkgs+=(containerd)
[ -x "$CNI_BIN/bridge" ] || pkgs+=(containernetworking-plugins)
if [ ${#pkgs[@]} -eq 0 ]; then
	log "found runc, containerd and $CNI_BIN"
elif command -v apt-get >/dev/null 2>&1; then
	start=$(date +%s)
	log "installing ${pkgs[*]} with apt-get"
	as_root apt-get update -qq >&2
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
	if [[ " ${pkgs[*]} " == *" containerd "* ]]; then
		if command -v systemctl >/dev/null 2>&1; then as_root systemctl stop containerd >&2 2>/dev/null || true; fi
		if command -v service >/dev/null 2>&1; then as_root service containerd stop >&2 2>/dev/null || true; fi
	fi
	log "installed ${pkgs[*]} in $(($(date +%s) - start)) s"
else
	log "no apt-get: runc/containerd missing; the tests that run containers and pods will be skipped"
	exit 0
fi

RUNC="$(command -v runc || true)"
CONTAINERD="$(command -v containerd || true)"
[ -n "$RUNC" ] && echo "export IMAGESYNC_RUNC=$RUNC"
[ -n "$CONTAINERD" ] && echo "export IMAGESYNC_CONTAINERD=$CONTAINERD"
[ -x "$CNI_BIN/bridge" ] && echo "export IMAGESYNC_CNI_BIN=$CNI_BIN"
exit 0
