package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/sink/sqlite"
)

// TestTailReadsOnlyWhatItPrints stores a million signals and runs `tail -n 10`: it
// prints the newest ten, oldest first, and the store reports reading ten rows, not the
// day's million.
func TestTailReadsOnlyWhatItPrints(t *testing.T) {
	if testing.Short() {
		t.Skip("a million rows; skipped in -short mode")
	}
	ctx := context.Background()
	dir := t.TempDir()
	w, err := sqlite.Open(ctx, filepath.Join(dir, "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	const n = 1_000_000
	newest := time.Now().Add(-time.Minute).UnixMilli()
	_, err = w.DB().ExecContext(ctx, `WITH RECURSIVE i(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM i WHERE k + 1 < ?)
		INSERT INTO signals (event_id, type, site, anonymous_id, received_ms, bot, url, path, referrer, utm_source,
			utm_medium, utm_campaign, utm_term, utm_content, name, experiment, variant, value, props, session_ms)
		SELECT printf('bulk-%07d', k), 'pageview', 'bulk.example', 'v' || (k % 1000), ? - ? + 1 + k, 0,
			'https://bulk.example/', '/', '', '', '', '', '', '', '', '', '', NULL, '', 0 FROM i`, n, newest, n)
	w.Close()
	if err != nil {
		t.Fatalf("fill the store: %v", err)
	}

	set := metrics.NewSet()
	var out bytes.Buffer
	if err := tail(ctx, &tailConfig{at: sinkAt{DataDir: dir}, n: 10, since: 24 * time.Hour}, &out, set); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 11 {
		t.Fatalf("tail -n 10 printed %d lines, want a header and 10:\n%s", len(lines), out.String())
	}
	for i, line := range lines[1:] {
		if want := fmt.Sprintf("bulk-%07d", n-10+i); !strings.HasSuffix(line, want) {
			t.Errorf("line %d = %q, want signal %s", i+1, line, want)
		}
	}
	if read := set.GetOrCreateCounter(`rung_sink_rows_read_total{table="signals"}`).Get(); read > 10 {
		t.Errorf("tail -n 10 read %d rows of a store of %d", read, n)
	}
}

// A reader pointed at the wrong place says so and leaves nothing behind.
func TestTailOpensReadOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nothing")
	var out bytes.Buffer
	err := runTail(context.Background(), []string{"--data-dir", dir}, func(string) (string, bool) { return "", false }, &out)
	if err == nil || !strings.Contains(err.Error(), "no telemetry store") || !strings.Contains(err.Error(), "rung migrate") {
		t.Errorf("tail of a missing store: err = %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("tail made %s: %v", dir, err)
	}
}
