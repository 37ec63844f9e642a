package preagg

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/preagg/stats"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/clickhouse"
	"github.com/rungdev/rung/sink/sqlite"
)

// store is everything the tests need of a sink.
type store interface {
	sink.Sink
	stats.Reader
	Auditor
	Resumer
	Signals(ctx context.Context, fromMs, toMs int64) ([]schemas.Signal, error)
	RecomputeLanding(ctx context.Context, f sink.LandingFilter, rules sink.Rules) ([]sink.LandingCount, error)
}

var (
	_ store = (*clickhouse.ClickHouse)(nil)
	_ store = (*sqlite.SQLite)(nil)
)

// backends are the stores every end-to-end test runs against.
var backends = []struct {
	name string
	open func(t testing.TB) store
}{
	{"sqlite", openSQLite},
	{"clickhouse", openClickHouse},
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

// openClickHouse opens a fresh database on the test server (RUNG_TEST_CLICKHOUSE,
// default clickhouse://127.0.0.1:9000) and drops it at the end.
func openClickHouse(t testing.TB) store {
	t.Helper()
	addr := os.Getenv("RUNG_TEST_CLICKHOUSE")
	if addr == "" {
		addr = "clickhouse://127.0.0.1:9000"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := clickhouse.Open(ctx, fmt.Sprintf("%s/rung_test_%08x", addr, rand.Uint32()), clickhouse.Options{}, metrics.NewSet())
	if err != nil {
		t.Fatalf("ClickHouse is required for this test (start it with .ci/services): %v", err)
	}
	t.Cleanup(func() {
		if err := c.DropDatabase(context.Background()); err != nil {
			t.Errorf("drop test database: %v", err)
		}
		c.Close()
	})
	return c
}

// memWriter keeps every batch written, copied, for tests that look at the rows.
type memWriter struct {
	batches []sink.Batch
	fail    func(n int) error // fails the n-th write (from 0) when it returns an error
}

func (m *memWriter) Write(_ context.Context, b *sink.Batch) error {
	n := len(m.batches)
	if m.fail != nil {
		if err := m.fail(n); err != nil {
			m.batches = append(m.batches, sink.Batch{}) // count the attempt
			return err
		}
	}
	m.batches = append(m.batches, sink.Batch{
		Signals:     append([]schemas.Signal(nil), b.Signals...),
		SessionMs:   append([]int64(nil), b.SessionMs...),
		Landing:     append([]sink.LandingCell(nil), b.Landing...),
		Exposures:   append([]sink.Exposure(nil), b.Exposures...),
		Conversions: append([]sink.Conversion(nil), b.Conversions...),
	})
	return nil
}

func newAggregator(t testing.TB, cfg Config) *Aggregator {
	t.Helper()
	a, err := New(cfg, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	return a
}
