package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer/stream/streamtest"
	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/sink/clickhouse"
)

// TestClusterPermanentSinkError: in cluster mode a permanent sink error at the
// aggregator (the signals table's value column made a String under it) acknowledges the
// message, so JetStream does not deliver it for ever, and counts the signals dropped.
// The table mended, the next signals are stored. By event_id: the signals missing are
// exactly those sent while the table was broken, as many as the aggregator counted.
func TestClusterPermanentSinkError(t *testing.T) {
	nats := streamtest.StartServer(t)
	dsn := testClickHouseDSN()
	dropAfter(t, dsn)
	common := []string{"--nats", nats.URL, "--clickhouse", dsn, "--stream-partitions", "8"}
	agg := startRung(t, "aggregate", append(common, "--flush-interval", "50ms", "--batch-size", "100", "--ack-wait", "2s")...)
	col := startServe(t, append(common, "--relay=false")...)
	waitReady(t, col)

	ctx := context.Background()
	store, err := clickhouse.Open(ctx, dsn, clickhouse.Options{Writers: 1}, metrics.NewSet())
	if err != nil {
		t.Fatalf("ClickHouse is required for this test (start it with .ci/services): %v", err)
	}
	defer store.Close()
	alter := func(a string) {
		t.Helper()
		if err := store.Conn().Exec(ctx, "ALTER TABLE "+store.Database()+".signals "+a); err != nil {
			t.Fatal(err)
		}
	}
	rounds := clusterWorkload(13, "permanent.example", 60)
	l := harness.NewLedger()

	alter("MODIFY COLUMN value String")
	postRound(t, rounds[0], l, col)
	broken := l.Acked()
	harness.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if d := agg.metric(`rung_signals_dropped_total{reason="sink_error"}`); d != float64(len(broken)) {
			return fmt.Errorf("the aggregator counted %v dropped of the %d sent while the table was broken", d, len(broken))
		}
		return nil
	})
	drained(t, nats.URL) // acknowledged: JetStream holds none of it to deliver again
	if n := agg.metric(`rung_sink_write_failures_total{class="permanent"}`); n == 0 {
		t.Error("no permanent write failure counted")
	}

	alter("MODIFY COLUMN value Nullable(Float64)")
	postRound(t, rounds[1], l, col)
	drained(t, nats.URL)
	acked, _ := l.Count(harness.Acked)
	harness.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if w := agg.metric(`rung_sink_rows_written_total{table="signals"}`); w != float64(acked-len(broken)) {
			return fmt.Errorf("rows written %v, want the %d sent since the table was mended", w, acked-len(broken))
		}
		return nil
	})
	stored, err := store.Signals(ctx, 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	l.Check(t, harness.Outcome{Stored: copies(stored), Dropped: agg.dropped(), MayDrop: func(id string) bool { return broken[id] }})
	if t.Failed() {
		t.Logf("aggregator: read %v, redelivered %v", agg.metric("rung_stream_read_total"), agg.metric("rung_stream_redelivered_total"))
	}
	col.stop()
	agg.stop()
}

// bigSignal is a valid pageview of about 4 KiB (a long URL and referrer), so a test fills
// a 64 MiB write-ahead log with a few dozen requests.
func bigSignal(id string, i int) map[string]any {
	return map[string]any{"type": "pageview", "site": "full.example", "anonymous_id": fmt.Sprintf("visitor-%04d", i%1000),
		"event_id": id, "url": "https://full.example/" + strings.Repeat("p", 1900) + "?utm_source=news",
		"referrer": "https://ref.example/" + strings.Repeat("r", 1900)}
}

// postBatch posts the signals as one request, records the answer in l and returns its
// status and body.
func postBatch(t *testing.T, l *harness.Ledger, p *proc, batch []map[string]any) (int, []byte) {
	t.Helper()
	req, ids := collectRequest(p.url("/collect"), batch)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		l.Collect(ids, 0, nil, err)
		t.Fatalf("post: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	l.Collect(ids, resp.StatusCode, raw, nil)
	return resp.StatusCode, raw
}

// TestDurableLogFull: with --durability disk, a write-ahead log at --wal-bytes follows
// --when-full. Nothing is flushed (the flush is put off), so the log fills: under reject
// the requests past it are answered 503 and their signals counted as log_full rejections;
// under drop they are answered 202 and counted as log_full drops. After a clean stop, by
// event_id: everything acknowledged before the log filled is stored, the drops are
// exactly the signals missing, and nothing refused is stored.
func TestDurableLogFull(t *testing.T) {
	for _, tc := range []struct {
		policy, counter string
		status          int // the answer once the log is full
	}{
		{"reject", `rung_signals_rejected_total{reason="log_full"}`, http.StatusServiceUnavailable},
		{"drop", `rung_signals_dropped_total{reason="log_full"}`, http.StatusAccepted},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			dir := t.TempDir()
			p := startServe(t, "--data-dir", dir, "--durability", "disk", "--wal-bytes", fmt.Sprint(64<<20),
				"--buffer-bytes", fmt.Sprint(512<<20), "--when-full", tc.policy,
				"--flush-interval", "1h", "--batch-size", "100000", "--relay=false")
			l := harness.NewLedger()
			afterFull := map[string]bool{} // sent in or after the request that found the log full
			seq, extra := 0, -1
			for req := 0; extra != 0; req++ {
				if req == 200 {
					t.Fatalf("the log is not full after %d requests of 200 signals of 4 KiB", req)
				}
				batch := make([]map[string]any, 200)
				for i := range batch {
					seq++
					batch[i] = bigSignal(fmt.Sprintf("full-%06d", seq), seq)
				}
				status, body := postBatch(t, l, p, batch)
				if p.metric(tc.counter) == 0 {
					if status != http.StatusAccepted {
						t.Fatalf("status %d before the log was full: %s", status, body)
					}
					continue
				}
				for _, s := range batch {
					afterFull[s["event_id"].(string)] = true
				}
				if extra < 0 {
					extra = 3 // a few more requests, all past the bound
					continue
				}
				extra--
				if status != tc.status || (tc.status == http.StatusServiceUnavailable && !bytes.Contains(body, []byte("write-ahead log"))) {
					t.Errorf("with the log full: status %d %s, want %d", status, body, tc.status)
				}
			}
			counted := p.metric(tc.counter)
			dropped := p.dropped()
			p.stop()
			t.Logf("--when-full %s: %d signals sent, %v counted log_full", tc.policy, seq, counted)
			l.Check(t, harness.Outcome{Stored: copies(storedSignals(t, []string{"--data-dir", dir})), Dropped: dropped,
				MayDrop: func(id string) bool { return afterFull[id] }})
		})
	}
}

// TestDurableDrainTimeout: with --durability disk, what the buffer still holds when the
// drain deadline passes at stop (the sink is held blocked: another connection has the
// SQLite write lock) is counted as dropped, and the stop exits 1; but it is still in the
// write-ahead log, and the next start delivers it. By event_id, after that start and a
// clean stop: every acknowledged signal is stored once.
func TestDurableDrainTimeout(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--durability", "disk", "--flush-interval", "1h", "--batch-size", "100000",
		"--drain-timeout", "2s", "--relay=false"}
	p := startServe(t, args...)
	l := harness.NewLedger()
	acked := postAll(t, l, generate(31, 300), 5, p)
	if len(acked) == 0 {
		t.Fatal("nothing accepted")
	}

	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "telemetry.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	lock, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := p.terminate(); !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("rung serve exited with %v after a drain that timed out, want exit status 1", err)
	}
	left := p.stopDrops()
	if left == 0 {
		t.Fatalf("the stop counted nothing dropped: the drain did not time out\n%s", p.stderr.String())
	}
	if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}

	p = startServe(t, args...)
	replayed := p.metric("rung_wal_replayed_records_total")
	dropped := p.dropped()
	p.stop()
	t.Logf("%d acknowledged; the stop at the drain deadline counted %d dropped; the next start replayed %v", len(acked), left, replayed)
	if replayed < float64(left) {
		t.Errorf("the next start replayed %v signals, fewer than the %d the drain left", replayed, left)
	}
	// What the drain left was delivered at the next start: nothing is missing now.
	l.Check(t, harness.Outcome{Stored: copies(storedSignals(t, args)), Dropped: dropped})
}
