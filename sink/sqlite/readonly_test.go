package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// A read-only open creates nothing: no file where there is none, no table where the
// migrations have not run; and it cannot write.
func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	missing := filepath.Join(dir, "missing.db")
	if _, err := OpenReadOnly(ctx, missing, metrics.NewSet()); !errors.Is(err, sink.ErrNotMigrated) {
		t.Errorf("missing file: err = %v, want ErrNotMigrated", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a read-only open of a missing file made it: %v", err)
	}

	bare := filepath.Join(dir, "bare.db")
	if err := os.WriteFile(bare, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenReadOnly(ctx, bare, metrics.NewSet())
	if !errors.Is(err, sink.ErrNotMigrated) || !strings.Contains(err.Error(), "rung migrate") {
		t.Errorf("file without tables: err = %v, want ErrNotMigrated saying to run rung migrate", err)
	}
	if fi, _ := os.Stat(bare); fi.Size() != 0 {
		t.Errorf("a read-only open wrote %d bytes to a bare file", fi.Size())
	}

	path := filepath.Join(dir, "telemetry.db")
	w, err := Open(ctx, path, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	g := schemas.Signal{Type: schemas.TypePageview, Site: "s", AnonymousID: "v", EventID: "e-1",
		ReceivedAt: 1700000000000, URL: "https://s/", Path: "/"}
	if err := w.Write(ctx, &sink.Batch{Signals: []schemas.Signal{g}}); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReadOnly(ctx, path, metrics.NewSet())
	if err != nil {
		t.Fatalf("OpenReadOnly beside a writer: %v", err)
	}
	defer r.Close()
	if got, err := r.Newest(ctx, 0, 1<<62, 10); err != nil || len(got) != 1 || got[0].EventID != "e-1" {
		t.Errorf("read back %v, %v", got, err)
	}
	g.EventID = "e-2"
	if err := r.Write(ctx, &sink.Batch{Signals: []schemas.Signal{g}}); err == nil {
		t.Error("a read-only store took a write")
	}
}

// TestNewestReadsOnlyItsRows stores many signals and asks for the newest 10: the store
// hands back 10 rows (its rows-read counter), and SQLite finds them by walking the
// received_ms index backwards, not by sorting the table (its query plan). cmd/rung's
// tail test does the same through `rung tail` on a million.
func TestNewestReadsOnlyItsRows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "telemetry.db")
	w, err := Open(ctx, path, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const n = 100_000
	if err := fillSignals(ctx, w, n); err != nil {
		t.Fatal(err)
	}

	set := metrics.NewSet()
	r, err := OpenReadOnly(ctx, path, set)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Newest(ctx, 0, 1<<62, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 || got[0].EventID != "bulk-099990" || got[9].EventID != "bulk-099999" {
		t.Fatalf("newest 10 of %d: got %d, from %v to %v", n, len(got), got[0].EventID, got[len(got)-1].EventID)
	}
	if read := set.GetOrCreateCounter(`rung_sink_rows_read_total{table="signals"}`).Get(); read != 10 {
		t.Errorf("read %d rows for the newest 10 of %d", read, n)
	}
	plan := queryPlan(t, r, "SELECT "+columns+", session_ms FROM signals WHERE received_ms >= 0 AND received_ms < 1 "+
		"ORDER BY received_ms DESC, rowid DESC LIMIT 10")
	if !strings.Contains(plan, "signals_time") || strings.Contains(plan, "TEMP B-TREE") {
		t.Errorf("Newest does not walk the received_ms index: plan %q", plan)
	}
}

// fillSignals inserts n signals in one statement, received a millisecond apart.
func fillSignals(ctx context.Context, s *SQLite, n int) error {
	_, err := s.db.ExecContext(ctx, `WITH RECURSIVE i(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM i WHERE k + 1 < ?)
		INSERT INTO signals (`+columns+`, session_ms)
		SELECT printf('bulk-%06d', k), 'pageview', 'bulk.example', 'v' || (k % 1000), 1700000000000 + k, 0,
			'https://bulk.example/', '/', '', '', '', '', '', '', '', '', '', NULL, '', 0 FROM i`, n)
	return err
}

func queryPlan(t *testing.T, s *SQLite, q string) string {
	t.Helper()
	rows, err := s.db.Query("EXPLAIN QUERY PLAN " + q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return strings.Join(plan, "; ")
}
