package collector

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/sqlite"
)

// TestPaddedBodiesStayInBound sends valid signals padded with whitespace to 64 KiB a
// body, each from its own visitor, into a buffer of 1 MiB whose sink is held blocked (a
// SQLite database another connection holds the write lock of), until the buffer
// refuses them. The live heap the held signals add must stay under the bound plus the
// overhead the buffer states (buffer.Overhead), however many bodies it took: a buffer
// that kept each signal's body alive holds 64 times its bound. Then the lock is let go,
// and every signal answered 202 must land, by event_id.
func TestPaddedBodiesStayInBound(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sink.db")
	set := metrics.NewSet()
	store, err := sqlite.Open(ctx, path, set)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	lockDB, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer lockDB.Close()
	lock, err := lockDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Error(err)
			}
		}
	}
	defer unlock()

	cfg := buffer.Config{BatchSize: 100, FlushInterval: 10 * time.Millisecond, MaxBytes: 1 << 20}
	buf := buffer.New(cfg, func(ctx context.Context, s []schemas.Signal) error {
		return store.Write(ctx, &sink.Batch{Signals: s})
	}, set)
	ran := make(chan error, 1)
	go func() { ran <- buf.Run(ctx) }()
	defer func() { buf.Close(); <-ran }()
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Config{Admits: buf.Admits}, reg, buf, store.Ping, set, slog.New(slog.NewTextHandler(io.Discard, nil)))

	const bodyBytes = 64 << 10
	padded := func(i int) string {
		s := fmt.Sprintf(`{"type":"pageview","site":"example.com","anonymous_id":"visitor-%08d","event_id":"padded-%08d",`+
			`"url":"https://example.com/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring","referrer":"https://www.google.com/"}`, i, i)
		return s + strings.Repeat(" ", bodyBytes-len(s))
	}
	req := harness.CollectRequest(padded(-1)[:bodyBytes-1] + "x") // malformed: 400, and fasthttp's buffers are grown
	srv.Handler(req)
	live := func() int64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	before := live()
	l := harness.NewLedger()
	refused := 0
	for i := 0; refused < 100; i++ {
		req.Request.SetBodyString(padded(i))
		req.Response.Reset()
		srv.Handler(req)
		code := req.Response.StatusCode()
		l.Collect([]string{fmt.Sprintf("padded-%08d", i)}, code, req.Response.Body(), nil)
		switch code {
		case 202:
		case 503:
			refused++
		default:
			t.Fatalf("request %d: status %d: %s", i, code, req.Response.Body())
		}
	}
	accepted, _ := l.Count(harness.Acked)
	// Memory the test allocated before its baseline and freed since can put the heap
	// below it: then the buffer holds nothing measurable.
	held := max(live()-before, 0)
	bound := cfg.MaxBytes + buffer.Overhead(cfg)
	t.Logf("%d bodies of %d KiB taken, %d refused: %d KiB live, bound %d KiB + overhead %d KiB (%.2f of it)",
		accepted, bodyBytes>>10, refused, held>>10, cfg.MaxBytes>>10, buffer.Overhead(cfg)>>10, float64(held)/float64(bound))
	if accepted < 1000 {
		t.Errorf("the buffer took only %d signals before it was full", accepted)
	}

	unlock()
	buf.Close()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	ran <- nil // for the deferred Close
	stored, err := store.Signals(ctx, 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	dropped := 0
	for _, reason := range []string{"buffer_full", "sink_error", "shutdown"} {
		dropped += int(set.GetOrCreateCounter(`rung_signals_dropped_total{reason="` + reason + `"}`).Get())
	}
	l.Check(t, harness.Outcome{Stored: harness.Copies(stored, func(s schemas.Signal) string { return s.EventID }), Dropped: dropped,
		Memory: []harness.Memory{{What: "live heap the buffer's signals hold", Used: held, Bound: bound}}})
}
