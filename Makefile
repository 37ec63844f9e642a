# The whole test suite, on a fresh machine of the go-svc kind: installs and starts what
# the tests talk to (ClickHouse, PostgreSQL, Redis, NATS with JetStream, Chromium), then
# vets, runs staticcheck, cross-builds, checks for reachable known vulnerabilities, runs
# the packages that need no server under the race detector and tests everything. This is
# what .ci/run calls.
#
# rung is built and tested with Go 1.27.3: go.mod asks for 1.26.8 at least, but 1.27.3
# carries the standard library's security fixes that govulncheck asks for. go.mod's
# toolchain line picks it wherever GOTOOLCHAIN is auto (Go's default); set here too, it
# holds where a machine's default is local. The go command fetches it from the module
# proxy once (about 76 MB).
export GOTOOLCHAIN := go1.27.3

# The platforms rung builds for: the image's two (Dockerfile) and Apple Silicon.
PLATFORMS := linux/amd64 linux/arm64 darwin/arm64

# staticcheck, pinned to a release that reads Go 1.27 code (2026.2.2). go run
# fetches it from the module proxy once and caches the build.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# The packages whose tests need no server (Chromium and the rung binary are started by
# the tests themselves). A package whose tests talk to ClickHouse, PostgreSQL, NATS or
# Redis is not listed here; it is tested without -race by `go test ./...`.
RACE_PKGS := ./bench ./buffer ./buffer/batch ./collector ./collector/snippet \
	./internal/harness ./preagg/dashboard ./preagg/stats ./schemas ./sink ./sink/sqlite \
	./tiers/place

.PHONY: test services vet staticcheck crossbuild vulncheck race faults serve

test: services vet staticcheck crossbuild vulncheck race
	go test ./...

services:
	bash .ci/services

vet:
	go vet ./...

# Compiles every package for each of PLATFORMS without cgo, as the image is built, and
# discards the binaries; then the commands for each with the go command's own defaults
# (cgo is off when cross-compiling unless asked for), as a user would build them. After
# the first run the build cache holds every package; only the commands are linked again.
crossbuild:
	@for p in $(PLATFORMS); do \
		echo "go build ./... and ./cmd/... for $$p"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} go build ./... || exit 1; \
		env -u CGO_ENABLED GOOS=$${p%/*} GOARCH=$${p#*/} go build -o /dev/null ./cmd/... || exit 1; \
	done

staticcheck:
	go run $(STATICCHECK) ./...

vulncheck:
	bash .ci/vulncheck

# Allocation tests skip themselves under -race (harness.SkipAllocsUnderRace).
race:
	go test -race $(RACE_PKGS)

# The fault suite (README, "The fault suite"): every fault test, against the real services.
FAULTS := TestSIGTERMDrains|TestShutdownThatDropsExitsNonZero|TestClickHouseOutage|TestClickHouseSchemaFaults|TestWriteFaults|TestClassify|TestPaddedBodiesStayInBound|TestFullRefusedBeforeDecode|TestHostile|TestRejectedCost|TestDurableUnderKill|TestDurableTornTail|TestDurableLogFull|TestDurableDrainTimeout|TestCluster|TestClusterPermanentSinkError|TestAggregatorKilledAfterRaw|TestClusterNATSOutage|TestRelaySIGKILLed|TestRelayDownPastDuplicateWindow|TestNATSOutage|TestProjectorSIGKILLedBeforeAck|TestConcurrentStarts|TestLedger.*
faults: services
	go test -count=1 -run '^($(FAULTS))$$' ./internal/harness ./cmd/rung ./collector ./sink/sqlite ./stitch/outbox

# rung on the embedded defaults (SQLite under ./rung-data).
serve:
	go run ./cmd/rung serve
