package stats

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/sqlite"
)

const hour = int64(time.Hour / time.Millisecond)

var testBase = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// store is what the query tests need of a sink: rollups written in, read back.
type store interface {
	sink.Sink
	Reader
}

func openSQLite(t testing.TB) store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
