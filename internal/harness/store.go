package harness

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/sink/sqlite"
)

// SQLite opens a fresh SQLite telemetry store in the test's temporary directory, migrated
// and closed when the test ends: the embedded default, as rung serve would open it.
func SQLite(t testing.TB) *sqlite.SQLite {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
