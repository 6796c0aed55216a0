#!/usr/bin/env bash
# The one command that runs every test (`make test` calls it; so does CI):
# installs the real registry servers the integration tests need, then vets,
# runs all tests with the race detector against them, and checks that the
# Windows and macOS builds compile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(scripts/test-deps.sh)"
export IMAGESYNC_REQUIRE_REGISTRIES=1   # a missing registry is a failure, not a skip
# The plugin tests run the real docker and kubectl clients: required where present on this kind of machine.
if command -v docker >/dev/null 2>&1 && command -v kubectl >/dev/null 2>&1; then
	export IMAGESYNC_REQUIRE_CLIENTS=1
else
	echo "test: docker or kubectl client not found: the plugin tests will be skipped" >&2
fi
export CGO_ENABLED="${CGO_ENABLED:-1}"  # -race needs cgo; the shipped binary is built with CGO_ENABLED=0

echo "== go vet" >&2
go vet ./...
echo "== gofmt" >&2
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted" >&2; exit 1; fi
echo "== go test -race ./..." >&2
go test -race -count=1 -timeout 15m ./...
echo "== cross-compile (CGO_ENABLED=0)" >&2
for target in linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do
	CGO_ENABLED=0 GOOS="${target%/*}" GOARCH="${target#*/}" go build -o /dev/null ./cmd/imagesync
	echo "   $target ok" >&2
done
