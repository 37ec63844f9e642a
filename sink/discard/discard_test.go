package discard

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// TestCounts writes batches from several goroutines, as the buffer's flushers do, and
// checks that every row is counted by table and that reading back finds nothing.
func TestCounts(t *testing.T) {
	set := metrics.NewSet()
	s := New(set)
	b := &sink.Batch{
		Signals:     make([]schemas.Signal, 7),
		Landing:     make([]sink.LandingCell, 3),
		Exposures:   make([]sink.Exposure, 2),
		Conversions: make([]sink.Conversion, 1),
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if err := s.Write(context.Background(), b); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := s.Discarded(); got != 4*100*7 {
		t.Errorf("Signals() = %d, want %d", got, 4*100*7)
	}
	var out strings.Builder
	set.WritePrometheus(&out)
	for _, want := range []string{
		`rung_sink_rows_discarded_total{table="signals"} 2800`,
		`rung_sink_rows_discarded_total{table="landing_hourly"} 1200`,
		`rung_sink_rows_discarded_total{table="visitors"} 1200`,
	} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, out.String())
		}
	}
	ctx := context.Background()
	if got, err := s.VisitorSignals(ctx, "a1b2c3d4"); err != nil || len(got) != 0 {
		t.Errorf("VisitorSignals = %v, %v: want nothing", got, err)
	}
	n, err := s.Resume(ctx, 1, sink.ResumeScope{}, func([]sink.Resume) error {
		t.Error("Resume handed over a chunk")
		return nil
	})
	if n != 0 || err != nil {
		t.Errorf("Resume = %d, %v", n, err)
	}
}
