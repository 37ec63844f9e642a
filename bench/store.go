package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// Store reads back the signals of one site from the sink rung wrote them to. There are
// two: ClickHouse and SQLite.
type Store interface {
	// Count is the number of stored signals of site.
	Count(ctx context.Context, site string) (int64, error)
	// EventIDs calls fn with the event_id of every stored signal of site.
	EventIDs(ctx context.Context, site string, fn func(id string)) error
	Close() error
}

// ErrNoSignals: the store to verify against has no signals table, so it is not one rung
// wrote to (or rung has not started yet).
var ErrNoSignals = errors.New("no signals table")

// defaultDatabase is the ClickHouse database rung writes to when its DSN names none (or
// names "default"); bench reads the same DSN the same way.
const defaultDatabase = "rung"

// OpenStore opens the sink to verify against, read-only, the way any client of rung's
// store would: ClickHouse when dsn is given, else the SQLite file at path (rung serve's
// --data-dir/telemetry.db). It runs no DDL and writes nothing: the tables are rung's,
// and a store rung has not made is an error, not something to create. With cluster
// named, the signals table must be the Distributed one over the cluster's shards, so
// that the count covers all of them.
func OpenStore(ctx context.Context, dsn, cluster, path string) (Store, error) {
	if dsn != "" {
		return openClickHouse(ctx, dsn, cluster)
	}
	return openSQLite(ctx, path)
}

// sqlStore reads a SQLite file through database/sql.
type sqlStore struct{ db *sql.DB }

func openSQLite(ctx context.Context, path string) (*sqlStore, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open the sink to verify: %w", err)
	}
	// mode=ro opens the file read-only; query_only refuses any write besides. The
	// busy timeout rides out rung's own writes (the file is in WAL mode, so readers
	// rarely wait).
	u := url.URL{Scheme: "file", Path: path,
		RawQuery: "mode=ro&_pragma=query_only(1)&_pragma=busy_timeout(10000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("open the sink to verify: %s: %w", path, err)
	}
	var n int
	err = db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'signals'").Scan(&n)
	if err == nil && n == 0 {
		err = fmt.Errorf("%w in it: is it rung's --data-dir/telemetry.db?", ErrNoSignals)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open the sink to verify: %s: %w", path, err)
	}
	return &sqlStore{db}, nil
}

func (s *sqlStore) Count(ctx context.Context, site string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM signals WHERE site = ?", site).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count stored signals: %w", err)
	}
	return n, nil
}

func (s *sqlStore) EventIDs(ctx context.Context, site string, fn func(string)) error {
	rows, err := s.db.QueryContext(ctx, "SELECT event_id FROM signals WHERE site = ?", site)
	if err != nil {
		return fmt.Errorf("read stored event_ids: %w", err)
	}
	return scanIDs(rows, fn)
}

func (s *sqlStore) Close() error { return s.db.Close() }

// chStore reads ClickHouse through clickhouse-go's native protocol.
type chStore struct {
	conn   driver.Conn
	signal string // db.signals
}

func openClickHouse(ctx context.Context, dsn, cluster string) (*chStore, error) {
	opts, err := ch.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("open the sink to verify: clickhouse %q: %w", dsn, err)
	}
	db := opts.Auth.Database
	if db == "" || db == "default" {
		db = defaultDatabase
	}
	opts.Auth.Database = "default" // the database is checked below, with a clearer error
	if opts.Settings == nil {
		opts.Settings = ch.Settings{}
	}
	opts.Settings["readonly"] = 2 // reads, and settings for this session; no writes, no DDL
	opts.MaxOpenConns, opts.MaxIdleConns = 2, 2
	opts.DialTimeout = 5 * time.Second
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open the sink to verify: clickhouse %s: %w", dsn, err)
	}
	var engine string
	err = conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'signals'", db).Scan(&engine)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		err = fmt.Errorf("%w in database %s: is it the database rung writes to?", ErrNoSignals, db)
	case err == nil && cluster != "" && engine != "Distributed":
		err = fmt.Errorf("%s.signals is a %s table, not the Distributed one of a rung run with cluster %s: it holds one node's rows",
			db, engine, cluster)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open the sink to verify: clickhouse %s: %w", dsn, err)
	}
	return &chStore{conn: conn, signal: db + ".signals"}, nil
}

func (s *chStore) Count(ctx context.Context, site string) (int64, error) {
	var n uint64
	err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.signal+" WHERE site = ?", site).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count stored signals: %w", err)
	}
	return int64(n), nil
}

func (s *chStore) EventIDs(ctx context.Context, site string, fn func(string)) error {
	rows, err := s.conn.Query(ctx, "SELECT event_id FROM "+s.signal+" WHERE site = ?", site)
	if err != nil {
		return fmt.Errorf("read stored event_ids: %w", err)
	}
	return scanIDs(rows, fn)
}

func (s *chStore) Close() error { return s.conn.Close() }

// idRows is what both drivers' rows have in common.
type idRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// scanIDs calls fn with each row's event_id and closes rows.
func scanIDs(rows idRows, fn func(string)) error {
	defer rows.Close()
	var id string
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("read stored event_ids: %w", err)
		}
		fn(id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read stored event_ids: %w", err)
	}
	return nil
}
