# imagesync — see README.md. The two commands a fresh machine needs:
#   make demo   builds imagesync, starts two local registries, seeds one, syncs, prints digests
#   make test   installs the test registries and runs every test
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build install test test-short demo clean release-check

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/imagesync ./cmd/imagesync

install:
	CGO_ENABLED=0 $(GO) install -trimpath -ldflags '$(LDFLAGS)' ./cmd/imagesync

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
