package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// TestPageCacheBounded holds the README's figure for SQLite's memory outside the Go
// heap: at most 4 connections, each with a page cache of at most 16 MiB.
func TestPageCacheBounded(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "sink.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := s.db.Stats().MaxOpenConnections; n != 4 {
		t.Errorf("%d connections at most, want 4", n)
	}
	var conns []*sql.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 4 { // held together, so each is a connection of its own
		c, err := s.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var kib int
		if err := c.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&kib); err != nil {
			t.Fatal(err)
		}
		if kib != -16<<10 {
			t.Errorf("cache_size %d, want -16384 (16 MiB)", kib)
		}
	}
}
