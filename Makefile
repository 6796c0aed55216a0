# imagesync — see README.md. The two commands a fresh machine needs:
#   make demo   builds imagesync, starts two local registries, seeds one, syncs, prints digests
#   make test   installs the test registries and runs every test
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build install install-docker-system test test-short demo clean release-check bench

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/imagesync ./cmd/imagesync

# Where `make install` puts imagesync and kubectl-imagesync (a folder on PATH), and the docker plugin.
BINDIR         ?= $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
DOCKER_PLUGINS ?= $(HOME)/.docker/cli-plugins

# All three names for the current user: imagesync, kubectl-imagesync (+ its
# completion helper) next to it, and docker-sync in docker's plugin folder.
install:
	mkdir -p '$(BINDIR)' '$(DOCKER_PLUGINS)'
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o '$(BINDIR)/imagesync' ./cmd/imagesync
	cp '$(BINDIR)/imagesync' '$(BINDIR)/kubectl-imagesync'
	cp '$(BINDIR)/imagesync' '$(BINDIR)/kubectl_complete-imagesync'
	cp '$(BINDIR)/imagesync' '$(DOCKER_PLUGINS)/docker-sync'
	@echo "installed: $(BINDIR)/imagesync, $(BINDIR)/kubectl-imagesync, $(DOCKER_PLUGINS)/docker-sync"

# The Docker CLI plugin in a system plugin folder, where Docker also finds it
# under `docker --config DIR` and DOCKER_CONFIG=DIR (it looks in
# ~/.docker/cli-plugins only without them). Build as yourself, install as root:
#   make build && sudo make install-docker-system
# (or: make install DOCKER_PLUGINS=/usr/local/lib/docker/cli-plugins, as root).
DOCKER_SYSTEM_PLUGINS ?= /usr/local/lib/docker/cli-plugins
install-docker-system:
	@test -x bin/imagesync || { echo "bin/imagesync is missing: run make build first (as yourself)"; exit 1; }
	install -d '$(DOCKER_SYSTEM_PLUGINS)'
	install -m 0755 bin/imagesync '$(DOCKER_SYSTEM_PLUGINS)/docker-sync'
	@echo "installed: $(DOCKER_SYSTEM_PLUGINS)/docker-sync"

test:
	./scripts/test.sh

test-short:
	$(GO) test -race -short ./...

demo: build
	./scripts/demo.sh

clean:
	rm -rf bin

# goreleaser check (v2.15.1) and the krew manifest validator; slow to install, so not part of `make test`
release-check:
	./scripts/release-check.sh

# imagesync vs crane, regsync, skopeo, image-syncer and the protocol floor (bench/floor) on
# loopback registries: issue #12's workloads, a rate-limited destination, a ledger of a million
# images. Prints the tables and rewrites docs/benchmarks.md (between its markers) and
# docs/benchmarks.svg (measured, never asserted). Installs the peers (bench/install-peers.sh) and
# the registries when missing. Not part of `make test`; see docs/benchmarks.md for BENCH_* knobs.
bench: build
	eval "$$(./scripts/test-deps.sh)" && ./bench/install-peers.sh && \
	IMAGESYNC_REQUIRE_REGISTRIES=1 $(GO) test -tags bench -run TestBench -v -timeout 90m -count=1 ./bench/
