package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
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

// A store made before signals had session_ms, event_ms and seq gets the columns on
// Open, its signals placed at their receive time.
func TestMigrateAddsSessionColumn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`CREATE TABLE signals (event_id TEXT NOT NULL, type TEXT NOT NULL, site TEXT NOT NULL,
		anonymous_id TEXT NOT NULL, received_ms INTEGER NOT NULL, bot INTEGER NOT NULL, url TEXT NOT NULL,
		path TEXT NOT NULL, referrer TEXT NOT NULL, utm_source TEXT NOT NULL, utm_medium TEXT NOT NULL,
		utm_campaign TEXT NOT NULL, utm_term TEXT NOT NULL, utm_content TEXT NOT NULL, name TEXT NOT NULL,
		experiment TEXT NOT NULL, variant TEXT NOT NULL, value REAL, props TEXT NOT NULL);
		INSERT INTO signals VALUES ('old-1', 'pageview', 's', 'v', 1700000000000, 0, 'https://s/', '/', '', '', '', '', '', '', '', '', '', NULL, '')`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), path, metrics.NewSet())
	if err != nil {
		t.Fatalf("Open an old store: %v", err)
	}
	defer s.Close()
	b := &sink.Batch{Signals: []schemas.Signal{{Type: schemas.TypePageview, Site: "s", AnonymousID: "v", EventID: "new-1",
		ReceivedAt: 1700000000001, URL: "https://s/", Path: "/"}}, SessionMs: []int64{1700000000001}}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatalf("Write after the migration: %v", err)
	}
	got, starts, err := s.scanSignals(context.Background(), true, "ORDER BY received_ms")
	if err != nil || len(got) != 2 || starts[0] != 0 || starts[1] != 1700000000001 {
		t.Fatalf("after the migration: %v %v %v", got, starts, err)
	}
	if got[0].EventAt != got[0].ReceivedAt || got[0].Seq != 0 || got[1].EventAt != 1700000000001 {
		t.Errorf("event times after the migration: %d and %d, want the receive times", got[0].EventAt, got[1].EventAt)
	}
}
