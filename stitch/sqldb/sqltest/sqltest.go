// Package sqltest gives the tests of stitch and of every tier the same table of real
// backends: a fresh PostgreSQL schema with a random name (dropped at the end of the
// test) and a fresh SQLite file in the test's temporary directory. A backend that cannot
// be reached fails the test; it is never skipped.
package sqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
)

// DefaultPostgres is used when RUNG_TEST_POSTGRES is unset.
const DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Backend is one database a test runs against.
type Backend struct {
	Name    string // "postgres" or "sqlite", for t.Run
	Dialect sqldb.Dialect
	DB      *sql.DB
	Schema  string // the PostgreSQL schema created for the test; empty on SQLite
}

// PostgresDSN is the server the tests use.
func PostgresDSN() string {
	if v := os.Getenv("RUNG_TEST_POSTGRES"); v != "" {
		return v
	}
	return DefaultPostgres
}

// Backends opens one of each backend for t and registers their cleanup.
func Backends(t testing.TB) []Backend {
	t.Helper()
	return []Backend{Postgres(t), SQLite(t)}
}

// SQLite opens a fresh SQLite file under t.TempDir().
func SQLite(t testing.TB) Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	db, err := sqldb.Open(ctx, sqldb.SQLite, filepath.Join(t.TempDir(), "tiers.db"))
	if err != nil {
		t.Fatalf("sqlite: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return Backend{Name: "sqlite", Dialect: sqldb.SQLite, DB: db}
}

// Postgres creates a schema named rung_t_<random> on the test server, opens a handle
// whose search_path is that schema, and drops the schema when t ends.
func Postgres(t testing.TB) Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dsn := PostgresDSN()
	admin, err := sqldb.Open(ctx, sqldb.Postgres, dsn)
	if err != nil {
		t.Fatalf("postgres at %s (set RUNG_TEST_POSTGRES): %v", dsn, err)
	}
	schema := "rung_t_" + Suffix()
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema %s: %v", schema, err)
	}
	db, err := sqldb.Open(ctx, sqldb.Postgres, withParam(dsn, "search_path", schema))
	if err != nil {
		t.Fatalf("open postgres schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	return Backend{Name: "postgres", Dialect: sqldb.Postgres, DB: db, Schema: schema}
}

// Suffix is a random lower-case hex string for names a test creates.
func Suffix() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

func withParam(dsn, k, v string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set(k, v)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " " + k + "=" + v
}
