package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/sink/sinktest"
)

// TestDSN returns the DSN of a fresh test database on the test server
// (RUNG_TEST_CLICKHOUSE, default clickhouse://127.0.0.1:9000).
func testDSN() string {
	addr := os.Getenv("RUNG_TEST_CLICKHOUSE")
	if addr == "" {
		addr = "clickhouse://127.0.0.1:9000"
	}
	return fmt.Sprintf("%s/rung_test_%08x", addr, rand.Uint32())
}

func openTest(t *testing.T) *ClickHouse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Open(ctx, testDSN(), Options{}, metrics.NewSet())
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

// A database made before signals had session_ms gets the column on Open (18.16 has no
// ADD COLUMN IF NOT EXISTS: migrate looks first).
func TestMigrateAddsSessionColumn(t *testing.T) {
	ctx := context.Background()
	c := openTest(t)
	if err := c.conn.Exec(ctx, "ALTER TABLE "+c.db+".signals DROP COLUMN session_ms"); err != nil {
		t.Fatal(err)
	}
	if err := c.migrate(ctx, tables); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if err := c.migrate(ctx, tables); err != nil {
		t.Fatalf("migrate again: %v", err)
	}
	var n uint64
	if err := c.conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = 'signals' AND name = 'session_ms'",
		c.db).Scan(&n); err != nil || n != 1 {
		t.Fatalf("session_ms columns: %d, %v", n, err)
	}
}
