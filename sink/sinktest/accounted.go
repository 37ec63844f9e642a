package sinktest

import (
	"testing"

	"github.com/rungdev/rung/schemas"
)

// CheckAccounted is the check every fault test ends with: by event_id, the accepted
// signals missing from stored are as many as were counted dropped, and stored holds
// none twice and none that was not accepted. It returns how many were missing.
func CheckAccounted(t testing.TB, stored []schemas.Signal, accepted map[string]bool, dropped int) int {
	t.Helper()
	seen := map[string]int{}
	var spurious, dup, missing int
	for _, g := range stored {
		if seen[g.EventID]++; seen[g.EventID] == 2 {
			dup++
		}
		if !accepted[g.EventID] {
			spurious++
		}
	}
	for id := range accepted {
		if seen[id] == 0 {
			missing++
		}
	}
	if missing != dropped || spurious != 0 || dup != 0 {
		t.Errorf("accepted %d: missing %d, counted dropped %d, spurious %d, duplicated %d", len(accepted), missing, dropped, spurious, dup)
	}
	return missing
}
