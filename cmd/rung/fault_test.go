package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/sink/clickhouse"
	"github.com/rungdev/rung/sink/clickhouse/chtest"
)

// TestClickHouseOutage stops ClickHouse for 20 s under load and starts it again: nothing
// accepted is lost, /readyz says not ready while it is down, and the test sees the fault
// fire (sink retries, and 503s once the buffer fills).
func TestClickHouseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("20 s outage; skipped in -short mode")
	}
	ch := chtest.Start(t)
	dsn := ch.DSN("rung_test_outage")
	p := startServe(t, "--clickhouse", dsn, "--flush-interval", "100ms", "--batch-size", "200", "--buffer-bytes", "2097152")

	l := harness.NewLedger()
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		seq      int
	)
	ctx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() { // a steady trickle of 10-signal batches, about 1000 signals/s
		defer close(loadDone)
		client := &http.Client{Timeout: 5 * time.Second}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			ids := make([]string, 10)
			batch := make([]map[string]any, 10)
			for i := range batch {
				seq++
				ids[i] = fmt.Sprintf("outage-%08d", seq)
				batch[i] = map[string]any{"type": "pageview", "site": "outage.example",
					"anonymous_id": fmt.Sprintf("visitor-%04d", seq%300), "event_id": ids[i], "url": "https://outage.example/"}
			}
			body, _ := json.Marshal(batch)
			resp, err := client.Post(p.url("/collect"), "text/plain", bytes.NewReader(body))
			if err != nil {
				l.Collect(ids, 0, nil, err)
				t.Errorf("post: %v", err)
				return
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			l.Collect(ids, resp.StatusCode, raw, nil)
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		}
	}()

	ready := func(want int) func() error {
		return func() error {
			resp, err := http.Get(p.url("/readyz"))
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				return fmt.Errorf("/readyz %d, want %d", resp.StatusCode, want)
			}
			return nil
		}
	}
	harness.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if p.metric(`rung_sink_rows_written_total{table="signals"}`) < 1000 {
			return fmt.Errorf("load not flowing yet")
		}
		return nil
	})
	ch.Stop()
	down := time.Now()
	harness.CheckFor(t, 10*time.Second, 50*time.Millisecond, ready(503))
	<-time.After(20*time.Second - time.Since(down)) // the outage itself, not a synchronisation
	ch.Start()
	harness.CheckFor(t, 30*time.Second, 50*time.Millisecond, ready(200))
	<-time.After(time.Second) // load after recovery
	stopLoad()
	<-loadDone

	mu.Lock()
	defer mu.Unlock()
	acked, _ := l.Count(harness.Acked)
	harness.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
		if w := p.metric(`rung_sink_rows_written_total{table="signals"}`); w != float64(acked) {
			return fmt.Errorf("rows written %v, accepted %d", w, acked)
		}
		return nil
	})
	retries := p.metric("rung_sink_retries_total")
	// Refused whole before decoding (a body longer than the room left), or signal by
	// signal after it.
	full := p.metric(`rung_requests_rejected_total{reason="buffer_full"}`) + p.metric(`rung_signals_rejected_total{reason="buffer_full"}`)
	if retries == 0 {
		t.Error("no sink retries counted: the outage did not reach the sink")
	}
	if statuses[503] == 0 || full == 0 {
		t.Errorf("no 503 while ClickHouse was down (statuses %v): the buffer never filled", statuses)
	}
	t.Logf("statuses %v, sink retries %v, rejected as full %v", statuses, retries, full)
	dropped := p.dropped()
	p.stop()

	c, err := clickhouse.Open(context.Background(), dsn, clickhouse.Options{}, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.Signals(context.Background(), 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	// An outage the sink waits out drops nothing: MayDrop names no signal.
	l.Check(t, harness.Outcome{Stored: copies(got), Dropped: dropped, MayDrop: func(string) bool { return false }})
}
