#!/usr/bin/env bash
# The one command that runs every test (`make test` calls it; so does CI):
# installs the real registry servers the integration tests need, then vets,
# runs all tests with the race detector against them, and checks that the
# Windows and macOS builds compile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(scripts/test-deps.sh)"
export IMAGESYNC_REQUIRE_REGISTRIES=1   # a missing registry is a failure, not a skip
# The Kubernetes tests (internal/kubetest) are required once scripts/kube-deps.sh has built the control plane.
if [ -n "${IMAGESYNC_KUBE_APISERVER:-}" ]; then
	export IMAGESYNC_REQUIRE_KUBE=1
fi
# The container and real-node tests (runc, containerd, kubelet) are required where test-deps.sh installed them.
if [ -n "${IMAGESYNC_RUNC:-}" ] && [ -n "${IMAGESYNC_CONTAINERD:-}" ] && [ "$(id -u)" -eq 0 ]; then
	export IMAGESYNC_REQUIRE_NODE=1
fi
# The plugin tests run the real docker and kubectl clients: required where present on this kind of machine.
if command -v docker >/dev/null 2>&1 && command -v kubectl >/dev/null 2>&1; then
	export IMAGESYNC_REQUIRE_CLIENTS=1
else
	echo "test: docker or kubectl client not found: the plugin tests will be skipped" >&2
fi
export CGO_ENABLED="${CGO_ENABLED:-1}"  # -race needs cgo; the shipped binary is built with CGO_ENABLED=0

echo "== tracked build outputs" >&2
# Nothing built is committed: a tracked executable or archive fails the run.
built=""
while IFS= read -r -d '' f; do
	[ -f "$f" ] || continue
	magic=$(head -c 4 "$f" | od -An -tx1 | tr -d ' \n')
	case "$magic" in
	7f454c46 | 4d5a* | cffaedfe | cefaedfe | feedfacf | 1f8b* | 504b0304) built="$built $f" ;;
	esac
done < <(git ls-files -z 2>/dev/null)
if [ -n "$built" ]; then echo "build outputs are tracked by git (remove them, extend .gitignore):" >&2; echo "$built" >&2; exit 1; fi
echo "== go mod tidy" >&2
if ! go mod tidy -diff >/dev/null; then echo "go.mod/go.sum are not tidy: run go mod tidy" >&2; go mod tidy -diff >&2 || true; exit 1; fi
echo "== go vet" >&2
go vet ./...
echo "== staticcheck" >&2
"$IMAGESYNC_STATICCHECK" ./...
echo "== gofmt" >&2
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted" >&2; exit 1; fi
echo "== go test -race ./..." >&2
# -parallel 8: the integration tests that call t.Parallel mostly wait on registries, subprocesses and
# the network, so more of them in flight than the 2 cores' default of 2 shortens the run (cmd/imagesync:
# 280 s -> 222 s at 6); the tests that assert a time after a signal stay serial (see their "Serial:" lines).
go test -race -count=1 -parallel 8 -timeout 15m ./...
echo "== cross-compile (CGO_ENABLED=0)" >&2
for target in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do
	CGO_ENABLED=0 GOOS="${target%/*}" GOARCH="${target#*/}" go build -o /dev/null ./cmd/imagesync
	echo "   $target ok" >&2
done
echo "== go vet for windows and darwin (the tests compile there too)" >&2
for goos in windows darwin; do
	CGO_ENABLED=0 GOOS="$goos" go vet ./...
done
