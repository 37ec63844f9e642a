package harness

import (
	"testing"
	"time"
)

// CheckFor calls f every step until it returns nil, and fails t with f's last error once
// total has passed. Tests wait for a condition with it rather than sleeping for a guess.
func CheckFor(t testing.TB, total, step time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", total, err)
		}
		time.Sleep(step)
	}
}
