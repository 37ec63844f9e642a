package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/sink/clickhouse"
)

// TestClickHouseSchemaFaults breaks the signals table under a running `rung serve` the
// ways an operator can (a column of another type, a column missing), sends signals,
// and mends it: the failing batches are dropped once each, counted and logged with the
// table and the error, /readyz answers 503 naming the sink and the error while they
// fail and 200 once a write succeeds, and the buffer empties. Then, by event_id, the
// accepted signals missing from the table are as many as were counted dropped, and
// none is stored twice or unasked.
func TestClickHouseSchemaFaults(t *testing.T) {
	for _, c := range []struct {
		name, brk, mend, says string
	}{
		{"column of another type", "MODIFY COLUMN value String", "MODIFY COLUMN value Nullable(Float64)",
			"converting []*float64 to String is unsupported"},
		{"missing column", "DROP COLUMN props", "ADD COLUMN props String", "No such column props"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dsn := testClickHouseDSN()
			ctx := context.Background()
			store, err := clickhouse.Open(ctx, dsn, clickhouse.Options{Writers: 1}, metrics.NewSet())
			if err != nil {
				t.Fatalf("ClickHouse is required for this test (start it with .ci/services): %v", err)
			}
			defer store.Close()
			dropAfter(t, dsn)
			table := store.Database() + ".signals"
			alter := func(a string) {
				t.Helper()
				if err := store.Conn().Exec(ctx, "ALTER TABLE "+table+" "+a); err != nil {
					t.Fatal(err)
				}
			}
			p := startServe(t, "--clickhouse", dsn, "--flush-interval", "50ms", "--batch-size", "100")
			waitReady(t, p)
			rounds := clusterWorkload(7, "schema.example", 40)
			l := harness.NewLedger()

			alter(c.brk)
			postRound(t, rounds[0], l, p)
			broken := l.Acked() // sent while the table was broken: the signals that may be dropped
			accepted := func() int { n, _ := l.Count(harness.Acked); return n }
			dropped := func() float64 { return p.metric(`rung_signals_dropped_total{reason="sink_error"}`) }
			harness.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
				if d, held := dropped(), p.metric("rung_buffer_signals"); d != float64(accepted()) || held != 0 {
					return fmt.Errorf("dropped %v of %d accepted, %v held", d, accepted(), held)
				}
				return nil
			})
			status, body := fetchBody(t, p.url("/readyz"))
			if status != http.StatusServiceUnavailable || !strings.Contains(body, "clickhouse") || !strings.Contains(body, c.says) {
				t.Errorf("/readyz while failing: %d %q, want 503 naming the sink and %q", status, body, c.says)
			}
			if n := p.metric(`rung_sink_write_failures_total{class="permanent"}`); n == 0 {
				t.Error("no permanent write failure counted")
			}
			if r := p.metric("rung_sink_retries_total"); r != 0 {
				t.Errorf("a permanent error was retried %v times", r)
			}
			var line string
			for _, l := range strings.Split(p.stderr.String(), "\n") {
				if strings.Contains(l, "sink write failed") {
					line = l
					break
				}
			}
			if !strings.Contains(line, "table="+table) || !strings.Contains(line, c.says) {
				t.Errorf("log line %q: want table=%s and %q", line, table, c.says)
			}

			alter(c.mend)
			before := accepted()
			postRound(t, rounds[1], l, p)
			harness.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
				if w := p.metric(`rung_sink_rows_written_total{table="signals"}`); w != float64(accepted()-before) {
					return fmt.Errorf("rows written %v, want %d", w, accepted()-before)
				}
				if status, body := fetchBody(t, p.url("/readyz")); status != http.StatusOK {
					return fmt.Errorf("/readyz after mending: %d %s", status, body)
				}
				return nil
			})
			d := p.dropped()
			p.stop()

			stored, err := store.Signals(ctx, 0, 1<<62)
			if err != nil {
				t.Fatal(err)
			}
			// The CheckFor above had every signal sent while the table was broken
			// counted dropped; here they are the ones missing, by id.
			l.Check(t, harness.Outcome{Stored: copies(stored), Dropped: d, MayDrop: func(id string) bool { return broken[id] }})
		})
	}
}

func fetchBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
