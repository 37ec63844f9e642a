package harness

import "testing"

// SkipAllocsUnderRace skips an allocation test under -race (see Race): there the counts
// are the race detector's as much as the code's. The plain `go test` runs it.
func SkipAllocsUnderRace(t testing.TB) {
	t.Helper()
	if Race {
		t.Skip("allocation counts are not the code's under -race; go test without -race checks them")
	}
}
