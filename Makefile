# The whole test suite, on a fresh machine of the go-svc kind: installs and starts what
# the tests talk to (ClickHouse, PostgreSQL, Redis, NATS with JetStream, Chromium), then
# vets, checks for reachable known vulnerabilities and tests everything. This is what
# .ci/run calls.
#
# rung is built and tested with Go 1.27.3: go.mod asks for 1.26.8 at least, but 1.27.3
# carries the standard library's security fixes that govulncheck asks for. go.mod's
# toolchain line picks it wherever GOTOOLCHAIN is auto (Go's default); set here too, it
# holds where a machine's default is local. The go command fetches it from the module
# proxy once (about 76 MB).
export GOTOOLCHAIN := go1.27.3

# The platforms rung builds for: the image's two (Dockerfile) and Apple Silicon.
PLATFORMS := linux/amd64 linux/arm64 darwin/arm64

.PHONY: test services vet crossbuild vulncheck serve

test: services vet crossbuild vulncheck
	go test ./...

services:
	bash .ci/services

vet:
	go vet ./...

# Compiles every package for each of PLATFORMS without cgo, as the image is built, and
# discards the binaries. After the first run the build cache holds every package; only
# the commands are linked again.
crossbuild:
	@for p in $(PLATFORMS); do \
		echo "go build ./... for $$p"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build ./... || exit 1; \
	done

vulncheck:
	bash .ci/vulncheck

# rung on the embedded defaults (SQLite under ./rung-data).
serve:
	go run ./cmd/rung serve
