package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

func openFault(t *testing.T) *SQLite {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// swapDB makes the sink write through a new handle on its file, opened with query (the
// faults SQLite gives a connection: mode=ro, a page limit), until restore. The old
// handle stays open, so the WAL files stay as they are.
func swapDB(t *testing.T, s *SQLite, query string) (restore func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+s.path+"?"+query)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	orig, stmts := s.db, s.stmts
	s.db, s.stmts = db, nil
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, st := range s.stmts {
			st.Close()
		}
		s.db.Close()
		s.db, s.stmts = orig, stmts
	}
}

// fullHandle returns the query of a handle that may not grow the file: every signal of
// testSignals is larger than a page, so any insert of one needs a new page.
func fullHandle(t *testing.T, s *SQLite) string {
	t.Helper()
	var pages int
	if err := s.db.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("_pragma=busy_timeout(1000)&_pragma=max_page_count(%d)", pages)
}

func testSignals(prefix string, n int) []schemas.Signal {
	out := make([]schemas.Signal, n)
	for i := range out {
		out[i] = schemas.Signal{Type: schemas.TypePageview, Site: "fault.example", AnonymousID: fmt.Sprintf("v%03d", i%37),
			EventID: fmt.Sprintf("%s-%05d", prefix, i), ReceivedAt: 1700000000000 + int64(i), URL: "https://fault.example/" + strings.Repeat("p", 3000),
			Path: "/" + strings.Repeat("p", 3000)}
	}
	return out
}

// TestClassify provokes each error with the real driver and checks its class.
func TestClassify(t *testing.T) {
	insert := func(db *sql.DB) error {
		_, err := db.Exec(insertSQL[1], append(appendArgs(nil, &testSignals("c", 1)[0]), 0, 0, 0)...)
		return err
	}
	for _, c := range []struct {
		name    string
		provoke func(t *testing.T, s *SQLite) error
		want    sink.Class
	}{
		{"read-only database", func(t *testing.T, s *SQLite) error {
			db, _ := sql.Open("sqlite", "file:"+s.path+"?mode=ro")
			defer db.Close()
			return insert(db)
		}, sink.Permanent},
		{"disk full", func(t *testing.T, s *SQLite) error {
			db, _ := sql.Open("sqlite", "file:"+s.path+"?"+fullHandle(t, s))
			defer db.Close()
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			for _, g := range testSignals("full", 10) {
				if _, err := tx.Exec(insertSQL[1], append(appendArgs(nil, &g), 0, 0, 0)...); err != nil {
					return err
				}
			}
			return nil
		}, sink.Transient},
		{"busy", func(t *testing.T, s *SQLite) error {
			lock, err := s.db.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer lock.Close()
			if _, err := lock.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
				t.Fatal(err)
			}
			defer lock.ExecContext(context.Background(), "ROLLBACK")
			db, _ := sql.Open("sqlite", "file:"+s.path+"?_pragma=busy_timeout(0)")
			defer db.Close()
			return insert(db)
		}, sink.Transient},
		{"missing column", func(t *testing.T, s *SQLite) error {
			_, err := s.db.Exec("INSERT INTO signals (event_id, no_such_column) VALUES ('x', 1)")
			return err
		}, sink.Permanent},
		{"constraint", func(t *testing.T, s *SQLite) error {
			_, err := s.db.Exec("INSERT INTO conversions (site, anonymous_id, last_ms) VALUES ('s', 'a', 1), ('s', 'a', 2)")
			return err
		}, sink.Permanent},
		{"not sqlite's", func(t *testing.T, s *SQLite) error { return context.DeadlineExceeded }, sink.Transient},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.provoke(t, openFault(t))
			if err == nil {
				t.Fatal("no error provoked")
			}
			if got := classify(err); got != c.want {
				t.Errorf("classify(%v) = %v, want %v", err, got, c.want)
			}
		})
	}
}

// TestWriteFaults drives a pipeline (buffer → sink.Health → SQLite) into each fault and
// out of it: every accepted signal is stored or counted as dropped, by event_id; none
// twice, none unasked; /readyz fails while the sink does, naming it and the error; a
// log line names the table and the error; and the buffer empties without a hard stop.
func TestWriteFaults(t *testing.T) {
	for _, c := range []struct {
		name     string
		brk      func(t *testing.T, s *SQLite) (restore func())
		class    sink.Class
		attempts int
		wantLog  string
	}{
		{"read-only", func(t *testing.T, s *SQLite) func() { return swapDB(t, s, "mode=ro") },
			sink.Permanent, 1, "readonly database"},
		{"disk full", func(t *testing.T, s *SQLite) func() { return swapDB(t, s, fullHandle(t, s)) },
			sink.Transient, 5, "database or disk is full"},
		{"missing column", func(t *testing.T, s *SQLite) func() {
			if _, err := s.db.Exec("ALTER TABLE signals DROP COLUMN props"); err != nil {
				t.Fatal(err)
			}
			return func() {
				if _, err := s.db.Exec("ALTER TABLE signals ADD COLUMN props TEXT NOT NULL DEFAULT ''"); err != nil {
					t.Fatal(err)
				}
			}
		}, sink.Permanent, 1, "no column named props"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := openFault(t)
			var logs harness.Output
			set := metrics.NewSet()
			health := sink.NewHealth("sqlite", s, slog.New(slog.NewTextHandler(&logs, nil)), set)
			buf := buffer.New(buffer.Config{BatchSize: 100, FlushInterval: 20 * time.Millisecond, Flushers: 2},
				func(ctx context.Context, signals []schemas.Signal) error {
					return health.Write(ctx, &sink.Batch{Signals: signals})
				}, set)
			ran := make(chan error, 1)
			go func() { ran <- buf.Run(context.Background()) }()
			dropped := set.GetOrCreateCounter(`rung_signals_dropped_total{reason="sink_error"}`)
			failures := set.GetOrCreateCounter(`rung_sink_write_failures_total{class="` + c.class.String() + `"}`)
			l := harness.NewLedger()
			push := func(signals []schemas.Signal) {
				for i := range signals {
					if err := buf.Push(&signals[i]); err != nil {
						t.Fatalf("push: %v", err)
					}
					l.Record(harness.Acked, signals[i].EventID)
				}
			}
			settled := func() bool { return buf.Held() == 0 }
			wait := func(what string, ok func() bool) {
				t.Helper()
				for deadline := time.Now().Add(60 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("%s: not within 60s (held %d, dropped %d)", what, buf.Held(), dropped.Get())
					}
				}
			}

			push(testSignals("before", 150))
			wait("the healthy writes", settled)
			restore := c.brk(t, s)
			push(testSignals("during", 300))
			wait("the failing writes to be dropped", func() bool { return settled() && dropped.Get() == 300 })
			readyErr := health.Ready(context.Background())
			if readyErr == nil || !strings.Contains(readyErr.Error(), "sqlite") || !strings.Contains(readyErr.Error(), c.wantLog) {
				t.Errorf("/readyz while failing: %v, want the sink and %q", readyErr, c.wantLog)
			}
			if failures.Get() == 0 {
				t.Errorf("no write failure counted as %v", c.class)
			}
			line := ""
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "sink write failed") {
					line = l
					break
				}
			}
			want := fmt.Sprintf("class=%v attempts=%d", c.class, c.attempts)
			if !strings.Contains(line, "table=signals") || !strings.Contains(line, c.wantLog) || !strings.Contains(line, want) {
				t.Errorf("log line %q: want table=signals, %q and %q", line, want, c.wantLog)
			}
			restore()
			push(testSignals("after", 150))
			buf.Close()
			if err := <-ran; err != nil {
				t.Fatalf("run: %v", err)
			}
			if buf.Held() != 0 {
				t.Errorf("buffer holds %d after the drain", buf.Held())
			}
			if err := health.Ready(context.Background()); err != nil {
				t.Errorf("/readyz after recovery: %v", err)
			}
			stored, err := s.Signals(context.Background(), 0, 1<<62)
			if err != nil {
				t.Fatal(err)
			}
			// The dropped are the ones pushed while the fault held.
			l.Check(t, harness.Outcome{Stored: harness.Copies(stored, func(s schemas.Signal) string { return s.EventID }),
				Dropped: int(dropped.Get()), MayDrop: func(id string) bool { return strings.HasPrefix(id, "during-") }})
		})
	}
}
