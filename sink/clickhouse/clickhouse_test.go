package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/sinktest"
)

// testDSN returns the DSN of a fresh test database on the test server.
func testDSN() string {
	return fmt.Sprintf("%s/rung_test_%08x", testServer(), rand.Uint32())
}

// testServer is the test server's address (RUNG_TEST_CLICKHOUSE, default
// clickhouse://127.0.0.1:9000).
func testServer() string {
	if addr := os.Getenv("RUNG_TEST_CLICKHOUSE"); addr != "" {
		return addr
	}
	return "clickhouse://127.0.0.1:9000"
}

func openTest(t testing.TB) *ClickHouse {
	t.Helper()
	return openWith(t, Options{}, metrics.NewSet())
}

// openWith opens the test database with o, reporting to set; the test's cleanup drops it.
func openWith(t testing.TB, o Options, set *metrics.Set) *ClickHouse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Open(ctx, testDSN(), o, set)
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

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) sinktest.Store { return openTest(t) })
}

func TestOpenRejectsHTTP(t *testing.T) {
	_, err := Open(context.Background(), "http://127.0.0.1:8123/rung", Options{}, metrics.NewSet())
	if err == nil {
		t.Fatal("Open accepted the HTTP protocol")
	}
}

// A database made before signals had session_ms and flush gets the columns on Open
// (18.16 has no ADD COLUMN IF NOT EXISTS: migrate looks first).
func TestMigrateAddsSignalsColumns(t *testing.T) {
	ctx := context.Background()
	c := openTest(t)
	for _, col := range []string{"session_ms", "flush"} {
		if err := c.conn.Exec(ctx, "ALTER TABLE "+c.db+".signals DROP COLUMN "+col); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.migrate(ctx, tables); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if err := c.migrate(ctx, tables); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	var n uint64
	if err := c.conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = 'signals' AND name IN ('session_ms', 'flush')",
		c.db).Scan(&n); err != nil || n != 2 {
		t.Fatalf("session_ms and flush columns: %d of 2, %v", n, err)
	}
}

// A read-only open runs no DDL: a database that is not there stays absent, and the
// error says what to run; once the tables exist it reads them.
func TestOpenReadOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w := openTest(t)
	fresh := fmt.Sprintf("rung_test_%08x", rand.Uint32())
	_, err := Open(ctx, testServer()+"/"+fresh, Options{ReadOnly: true}, metrics.NewSet())
	if !errors.Is(err, sink.ErrNotMigrated) || !strings.Contains(err.Error(), "rung migrate") {
		t.Fatalf("read-only open of a fresh database: err = %v, want ErrNotMigrated saying to run rung migrate", err)
	}
	var n uint64
	if err := w.conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", fresh).Scan(&n); err != nil || n != 0 {
		t.Fatalf("a read-only open created database %s (%d, %v)", fresh, n, err)
	}

	g := schemas.Signal{Type: schemas.TypePageview, Site: "s", AnonymousID: "v", EventID: "e-1",
		ReceivedAt: 1700000000000, URL: "https://s/", Path: "/"}
	if err := w.Write(ctx, &sink.Batch{Signals: []schemas.Signal{g}}); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, testServer()+"/"+w.db, Options{ReadOnly: true}, metrics.NewSet())
	if err != nil {
		t.Fatalf("read-only open of a migrated database: %v", err)
	}
	defer r.Close()
	if got, err := r.Newest(ctx, 0, 1<<62, 10); err != nil || len(got) != 1 || got[0].EventID != "e-1" {
		t.Errorf("read back %v, %v", got, err)
	}
}
