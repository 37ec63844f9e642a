package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// storeRows are the signals every store test writes (site, event_id): two of one site,
// one of another that the reads must leave out.
var storeRows = [][2]string{{"a.example", "e1"}, {"a.example", "e2"}, {"b.example", "e3"}}

// checkReads: the store counts and lists the signals of a.example and nothing else.
func checkReads(t *testing.T, s Store) {
	t.Helper()
	ctx := context.Background()
	n, err := s.Count(ctx, "a.example")
	if err != nil || n != 2 {
		t.Errorf("count: %d, %v; want 2", n, err)
	}
	var ids []string
	if err := s.EventIDs(ctx, "a.example", func(id string) { ids = append(ids, id) }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"e1", "e2"}) {
		t.Errorf("event_ids %v, want [e1 e2]", ids)
	}
}

// TestSQLiteStoreIsReadOnly: bench reads rung's SQLite file as an outside client. It
// creates nothing (a missing file or a file without rung's tables is an error and stays
// as it was) and cannot write through its connection.
func TestSQLiteStoreIsReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "telemetry.db")
	w, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Exec("CREATE TABLE other (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(ctx, "", "", path); !errors.Is(err, ErrNoSignals) {
		t.Errorf("a file without a signals table: %v, want ErrNoSignals", err)
	}
	missing := filepath.Join(dir, "missing.db")
	if _, err := OpenStore(ctx, "", "", missing); err == nil {
		t.Error("a missing file opened")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("opening a missing file made it: %v", err)
	}

	if _, err := w.Exec("CREATE TABLE signals (site TEXT, event_id TEXT)"); err != nil {
		t.Fatal(err)
	}
	for _, r := range storeRows {
		if _, err := w.Exec("INSERT INTO signals VALUES (?, ?)", r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	s, err := OpenStore(ctx, "", "", path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkReads(t, s)
	for _, q := range []string{"DELETE FROM signals", "CREATE TABLE made_by_bench (x INTEGER)"} {
		if _, err := s.(*sqlStore).db.ExecContext(ctx, q); err == nil {
			t.Errorf("%s through the store succeeded", q)
		}
	}
}

// TestClickHouseStoreIsReadOnly: the same on ClickHouse, plus the cluster check: a
// signals table that is not Distributed holds one node's rows, and is refused when a
// cluster is named.
func TestClickHouseStoreIsReadOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr := os.Getenv("RUNG_TEST_CLICKHOUSE")
	if addr == "" {
		addr = "clickhouse://127.0.0.1:9000"
	}
	db := fmt.Sprintf("rung_test_%08x", rand.Uint32())
	opts, err := ch.ParseDSN(addr + "/default")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := ch.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() }) // after the database is dropped
	exists := func() bool {
		var n uint64
		if err := admin.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", db).Scan(&n); err != nil {
			t.Fatalf("ClickHouse is required for this test (start it with .ci/services): %v", err)
		}
		return n > 0
	}
	if exists() {
		t.Fatalf("database %s exists before the test", db)
	}
	if _, err := OpenStore(ctx, addr+"/"+db, "", ""); !errors.Is(err, ErrNoSignals) {
		t.Errorf("a database rung never made: %v, want ErrNoSignals", err)
	}
	if exists() {
		t.Fatalf("opening the store made database %s", db)
	}

	for _, q := range []string{"CREATE DATABASE " + db,
		"CREATE TABLE " + db + ".signals (site String, event_id String) ENGINE = MergeTree ORDER BY (site, event_id)"} {
		if err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	if err := insertCH(ctx, admin, db, storeRows); err != nil {
		t.Fatal(err)
	}
	s, err := OpenStore(ctx, addr+"/"+db, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkReads(t, s)
	conn := s.(*chStore).conn
	if err := insertCH(ctx, conn, db, [][2]string{{"a.example", "e9"}}); err == nil {
		t.Error("an INSERT through the store succeeded")
	}
	if err := conn.Exec(ctx, "CREATE TABLE "+db+".made_by_bench (x UInt8) ENGINE = Memory"); err == nil {
		t.Error("a CREATE TABLE through the store succeeded")
	}
	checkReads(t, s)

	_, err = OpenStore(ctx, addr+"/"+db, "rung", "")
	if err == nil || !strings.Contains(err.Error(), "not the Distributed one") {
		t.Errorf("a MergeTree signals table with a cluster named: %v", err)
	}
}

// insertCH writes rows (site, event_id) into db.signals through conn, in one batch (an
// INSERT over the native protocol sends its rows as a data block).
func insertCH(ctx context.Context, conn driver.Conn, db string, rows [][2]string) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".signals (site, event_id)")
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := b.Append(r[0], r[1]); err != nil {
			b.Abort()
			return err
		}
	}
	return b.Send()
}
