package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Dialect names a business database. Its zero value is invalid; the constants are the
// only valid values, and a plain string "postgres" or "sqlite" converts to them.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Validate reports whether d is one of the supported dialects.
func (d Dialect) Validate() error {
	switch d {
	case Postgres, SQLite:
		return nil
	}
	return fmt.Errorf("%w %q (want %q or %q)", ErrDialect, string(d), Postgres, SQLite)
}

// Driver is the database/sql driver name for d.
func (d Dialect) Driver() string {
	if d == Postgres {
		return "pgx"
	}
	return "sqlite"
}

// Open opens a database/sql handle for d and checks that it answers. For SQLite, dsn is
// a file path (or a file: URI); Open adds the settings every tier relies on: WAL,
// a busy timeout, foreign keys, and BEGIN IMMEDIATE so that a transaction that reads and
// then writes never fails to upgrade its lock.
func Open(ctx context.Context, d Dialect, dsn string) (*sql.DB, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if d == SQLite {
		dsn = SQLiteDSN(dsn)
	}
	db, err := sql.Open(d.Driver(), dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", d, err)
	}
	if d == SQLite {
		// One writer at a time is SQLite's model; a small pool keeps readers concurrent
		// under WAL without piling up writers that would only wait on the busy timeout.
		db.SetMaxOpenConns(4)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s: %w", d, err)
	}
	return db, nil
}

// SQLiteDSN turns a file path into the DSN Open uses for SQLite. A dsn that already has
// a query string is returned unchanged: its author chose the settings.
func SQLiteDSN(path string) string {
	if strings.Contains(path, "?") {
		return path
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	if !strings.HasPrefix(path, "file:") {
		path = "file:" + path
	}
	return path + "?" + q.Encode()
}

// Rebind rewrites the '?' placeholders of q into d's syntax ($1, $2, ... on
// PostgreSQL). Queries given to it are written with '?' and never contain a literal '?'.
func (d Dialect) Rebind(q string) string {
	if d != Postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Column types, by what they hold.

// TimeType is the column type of an instant.
func (d Dialect) TimeType() string {
	if d == Postgres {
		return "TIMESTAMPTZ"
	}
	return "TIMESTAMP"
}

// JSONType is the column type of a JSON document.
func (d Dialect) JSONType() string {
	if d == Postgres {
		return "JSONB"
	}
	return "TEXT"
}

// FloatType is the column type of a double-precision number.
func (d Dialect) FloatType() string {
	if d == Postgres {
		return "DOUBLE PRECISION"
	}
	return "REAL"
}

// JSONArg returns the bind argument for a JSON document.
func (d Dialect) JSONArg(doc []byte) any {
	return string(doc)
}

// sqliteTime is fixed width so that text comparison is instant comparison.
const sqliteTime = "2006-01-02 15:04:05.000000-07:00"

// Time returns the bind argument for t: UTC, truncated to microseconds.
func (d Dialect) Time(t time.Time) any {
	t = t.UTC().Truncate(time.Microsecond)
	if d == SQLite {
		return t.Format(sqliteTime)
	}
	return t
}

// Bucket is a calendar period used to group instants.
type Bucket string

const (
	Hour  Bucket = "hour"
	Day   Bucket = "day"
	Month Bucket = "month"
)

// Validate reports whether b is a known bucket.
func (b Bucket) Validate() error {
	switch b {
	case Hour, Day, Month:
		return nil
	}
	return fmt.Errorf("unknown bucket %q (want hour, day or month)", string(b))
}

// Period returns a SQL expression giving the bucket label of the time column col as
// text: "2026-03" for a month, "2026-03-31" for a day, "2026-03-31T14" for an hour
// (UTC). Labels sort in time order.
func (d Dialect) Period(b Bucket, col string) string {
	if d == Postgres {
		f := map[Bucket]string{Hour: `YYYY-MM-DD"T"HH24`, Day: "YYYY-MM-DD", Month: "YYYY-MM"}[b]
		return fmt.Sprintf("to_char(%s AT TIME ZONE 'UTC', '%s')", col, f)
	}
	f := map[Bucket]string{Hour: "%Y-%m-%dT%H", Day: "%Y-%m-%d", Month: "%Y-%m"}[b]
	return fmt.Sprintf("strftime('%s', %s)", f, col)
}

// Label is Period computed in Go, for the same bucket.
func (b Bucket) Label(t time.Time) string {
	t = t.UTC()
	switch b {
	case Hour:
		return t.Format("2006-01-02T15")
	case Month:
		return t.Format("2006-01")
	}
	return t.Format("2006-01-02")
}

// IsUniqueViolation reports whether err is a unique or primary-key constraint failure.
func IsUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		// SQLITE_CONSTRAINT_PRIMARYKEY (1555) and SQLITE_CONSTRAINT_UNIQUE (2067).
		return se.Code() == 1555 || se.Code() == 2067
	}
	return false
}

// Ident checks that name is a plain lower-case SQL identifier, so that it can be put in
// a statement without quoting. Table and column names come from the caller's code,
// never from end users, but a typo should fail loudly rather than build odd SQL.
func Ident(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("%w: %q", ErrIdent, name)
	}
	for i, c := range name {
		switch {
		case c == '_', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return fmt.Errorf("%w: %q", ErrIdent, name)
		}
	}
	return nil
}

// Execer is what an insert or update needs: a *sql.DB, *sql.Tx or *sql.Conn.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Querier is what a read needs: a *sql.DB, *sql.Tx or *sql.Conn.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Tx is what a read-then-write needs inside one transaction.
type Tx interface {
	Execer
	Querier
}

var (
	_ Tx = (*sql.DB)(nil)
	_ Tx = (*sql.Tx)(nil)
	_ Tx = (*sql.Conn)(nil)
)

// InTx runs fn in a transaction on db and commits it if fn returns nil; otherwise it
// rolls back and returns fn's error.
func InTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
