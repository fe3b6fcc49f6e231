# Sluice build: one static binary (CGO_ENABLED=0) per platform, version stamped in.
#
#   make build       ./bin/sluice for this machine
#   make build-all   ./bin/sluice-linux-amd64, -linux-arm64, -linux-armv7 (Raspberry Pi 2+)
#   make test        the whole test suite against real components (scripts/test)
#   make docker      the container image (Dockerfile)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GOFLAGS_BUILD := -trimpath -ldflags "$(LDFLAGS)"
BIN := bin
PLATFORMS := linux/amd64 linux/arm64 linux/arm/7

.PHONY: build build-all test docker clean

build:
	CGO_ENABLED=0 go build $(GOFLAGS_BUILD) -o $(BIN)/sluice ./cmd/sluice

build-all:
	@set -e; for p in $(PLATFORMS); do \
	  os=$${p%%/*}; rest=$${p#*/}; arch=$${rest%%/*}; arm=$${rest#*/}; \
	  if [ "$$arch" = arm ]; then out=$(BIN)/sluice-$$os-armv$$arm; else out=$(BIN)/sluice-$$os-$$arch; arm=; fi; \
	  echo "build $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm go build $(GOFLAGS_BUILD) -o $$out ./cmd/sluice; \
	done

test:
	./scripts/test

docker:
	docker build --build-arg VERSION=$(VERSION) -t sluice:$(VERSION) .

clean:
	rm -rf $(BIN)
