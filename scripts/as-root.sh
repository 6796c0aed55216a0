# Sourced by scripts/test-deps.sh and scripts/kube-deps.sh (each defines log first).
# as_root runs a command as root: directly, via sudo, or fails saying why.
as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		log "need root for: $* (no sudo)"
		return 1
	fi
}
