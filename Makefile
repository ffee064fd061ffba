# Reproducible builds with the version and commit stamped in. Plain
# `go build ./cmd/trestle-twilio` works too; this adds the stamps.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
PKG     := github.com/trestle-bridge/trestle/bridgev2/bridgemain
LDFLAGS := -s -w -X $(PKG).Version=$(VERSION) -X $(PKG).Commit=$(COMMIT)

.PHONY: build sandbox test ci bench

build:
	CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)" -o bin/trestle-twilio ./cmd/trestle-twilio

sandbox:
	go run ./cmd/trestle-sandbox

test:
	go test ./...

ci:
	bash .ci/run

bench:
	go run ./cmd/trestle-bench -mode null
