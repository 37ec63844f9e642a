package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/sink/sinktest"
)

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "sink.db"), metrics.NewSet())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
