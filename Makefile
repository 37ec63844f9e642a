# The whole test suite, on a fresh machine of the go-svc kind: installs and starts what
# the tests talk to (ClickHouse, PostgreSQL, Redis, NATS with JetStream, Chromium), then
# vets and tests everything. This is what .ci/run calls.
.PHONY: test services vet serve bench

test: services vet
	go test ./...

services:
	bash .ci/services

vet:
	go vet ./...

# rung on the embedded defaults (SQLite under ./rung-data).
serve:
	go run ./cmd/rung serve
