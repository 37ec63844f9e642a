# The whole test suite, on a fresh machine of the go-svc kind: installs and starts what
# the tests talk to (ClickHouse, PostgreSQL, Redis, NATS with JetStream, Chromium), then
# vets, checks for reachable known vulnerabilities and tests everything. This is what
# .ci/run calls.
#
# rung is built and tested with Go 1.27.3: go.mod asks for 1.26.8 at least, but 1.27.3
# carries the standard library's security fixes that govulncheck asks for. The go
# command fetches it from the module proxy once (about 76 MB).
export GOTOOLCHAIN := go1.27.3

.PHONY: test services vet vulncheck serve

test: services vet vulncheck
	go test ./...

services:
	bash .ci/services

vet:
	go vet ./...

vulncheck:
	bash .ci/vulncheck

# rung on the embedded defaults (SQLite under ./rung-data).
serve:
	go run ./cmd/rung serve
