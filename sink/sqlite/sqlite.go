// Package sqlite is the embedded telemetry sink: one SQLite file in WAL mode through the
// pure-Go driver, so `rung serve` runs with nothing else installed.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// SQLite is the embedded Sink. Writes are serialised by a mutex (SQLite has one writer);
// reads run concurrently on the same pool thanks to WAL.
type SQLite struct {
	db   *sql.DB
	path string
	mu   sync.Mutex // one writer

	stmts map[string]*sql.Stmt // prepared write statements, reused by every flush; guarded by mu
	table string               // the table of the statement run last; guarded by mu

	retry sink.Retry // of every write, by classify's class
	rows  *metrics.Counter
	read  *metrics.Counter // signals read back, so a reader's cost can be seen
}

var _ sink.Sink = (*SQLite)(nil)

// Open opens or creates the database file at path and migrates it.
func Open(ctx context.Context, path string, set *metrics.Set) (*SQLite, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create directory for %s: %w", path, err)
	}
	// temp_store and cache_size keep statement journals and a flush's pages in memory:
	// spilling them to files cost more than the inserts themselves. Each connection has
	// its own cache, so the cap is 16 MiB times the 4 connections: 64 MiB, the README's
	// figure.
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)" +
		"&_pragma=temp_store(MEMORY)&_pragma=cache_size(-16384)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	s := newSQLite(db, path, set)
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// OpenReadOnly opens the database file at path for reading only (SQLite's mode=ro): it
// creates nothing and runs no DDL, so a reader beside a running `rung serve` changes
// nothing, and a wrong path is an error rather than a new empty store. The file and
// its tables must exist already (sink.ErrNotMigrated otherwise).
func OpenReadOnly(ctx context.Context, path string, set *metrics.Set) (*SQLite, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w: %w", path, err, sink.ErrNotMigrated)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(2)
	s := newSQLite(db, path, set)
	if err := s.checkTables(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return s, nil
}

func newSQLite(db *sql.DB, path string, set *metrics.Set) *SQLite {
	return &SQLite{
		db:   db,
		path: path,
		retry: sink.Retry{
			Classify:    classify,
			MaxAttempts: 5,
			Errors:      set.GetOrCreateCounter(`rung_sink_errors_total`),
			Retries:     set.GetOrCreateCounter(`rung_sink_retries_total`),
		},
		rows: set.GetOrCreateCounter(`rung_sink_rows_written_total{table="signals"}`),
		read: set.GetOrCreateCounter(`rung_sink_rows_read_total{table="signals"}`),
	}
}

// checkTables makes sure every table the migrations create is there.
func (s *SQLite) checkTables(ctx context.Context) error {
	for _, name := range []string{"signals", "landing_hourly", "exposures", "conversions"} {
		var n int
		err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", name).Scan(&n)
		if err != nil {
			return fmt.Errorf("look for table %s: %w", name, err)
		}
		if n == 0 {
			return fmt.Errorf("no table %s: %w", name, sink.ErrNotMigrated)
		}
	}
	return nil
}

// DB returns the database handle, for the queries that read the sink.
func (s *SQLite) DB() *sql.DB { return s.db }

var migrations = []string{
	`CREATE TABLE IF NOT EXISTS signals (
		event_id     TEXT    NOT NULL,
		type         TEXT    NOT NULL,
		site         TEXT    NOT NULL,
		anonymous_id TEXT    NOT NULL,
		received_ms  INTEGER NOT NULL,
		bot          INTEGER NOT NULL,
		url          TEXT    NOT NULL,
		path         TEXT    NOT NULL,
		referrer     TEXT    NOT NULL,
		utm_source   TEXT    NOT NULL,
		utm_medium   TEXT    NOT NULL,
		utm_campaign TEXT    NOT NULL,
		utm_term     TEXT    NOT NULL,
		utm_content  TEXT    NOT NULL,
		name         TEXT    NOT NULL,
		experiment   TEXT    NOT NULL,
		variant      TEXT    NOT NULL,
		value        REAL,
		props        TEXT    NOT NULL,
		session_ms   INTEGER NOT NULL DEFAULT 0,
		event_ms     INTEGER NOT NULL DEFAULT 0,
		seq          INTEGER NOT NULL DEFAULT 0
	)`,
	`CREATE INDEX IF NOT EXISTS signals_site_time ON signals (site, received_ms)`,
	`CREATE INDEX IF NOT EXISTS signals_visitor ON signals (anonymous_id, received_ms)`,
	`CREATE INDEX IF NOT EXISTS signals_time ON signals (received_ms)`,
	`CREATE INDEX IF NOT EXISTS signals_event_time ON signals (event_ms)`,
	// The rollups: one row per key, moved only towards the winning value by the upserts
	// in rollup.go (see package sink).
	`CREATE INDEX IF NOT EXISTS signals_session ON signals (session_ms) WHERE session_ms > 0`,
	`CREATE TABLE IF NOT EXISTS landing_hourly (
		site         TEXT    NOT NULL,
		hour_ms      INTEGER NOT NULL,
		landing_path TEXT    NOT NULL,
		utm_source   TEXT    NOT NULL,
		utm_medium   TEXT    NOT NULL,
		utm_campaign TEXT    NOT NULL,
		cell         INTEGER NOT NULL,
		sessions     INTEGER NOT NULL,
		converted    INTEGER NOT NULL,
		version      INTEGER NOT NULL,
		PRIMARY KEY (site, hour_ms, landing_path, utm_source, utm_medium, utm_campaign, cell)
	) WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS landing_hourly_hour ON landing_hourly (hour_ms)`,
	`CREATE TABLE IF NOT EXISTS exposures (
		site         TEXT    NOT NULL,
		experiment   TEXT    NOT NULL,
		anonymous_id TEXT    NOT NULL,
		first_ms     INTEGER NOT NULL,
		variant      TEXT    NOT NULL,
		PRIMARY KEY (site, experiment, anonymous_id)
	) WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS exposures_experiment ON exposures (experiment, first_ms)`,
	`CREATE TABLE IF NOT EXISTS conversions (
		site         TEXT    NOT NULL,
		anonymous_id TEXT    NOT NULL,
		last_ms      INTEGER NOT NULL,
		PRIMARY KEY (site, anonymous_id)
	) WITHOUT ROWID`,
}

// addedColumns are columns added after a table was first released: migrate adds them
// to tables created before, and runs fill once, when it adds the column.
var addedColumns = []struct{ table, column, decl, fill string }{
	{"signals", "session_ms", "INTEGER NOT NULL DEFAULT 0", ""},
	// Signals stored before event times were placed at their receive time.
	{"signals", "event_ms", "INTEGER NOT NULL DEFAULT 0", "UPDATE signals SET event_ms = received_ms"},
	{"signals", "seq", "INTEGER NOT NULL DEFAULT 0", ""},
}

func (s *SQLite) migrate(ctx context.Context) error {
	for _, a := range addedColumns {
		var n int
		err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", a.table, a.column).Scan(&n)
		if err != nil {
			return fmt.Errorf("migrate sqlite sink: look for column %s.%s: %w", a.table, a.column, err)
		}
		var exists int
		if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", a.table).Scan(&exists); err != nil {
			return fmt.Errorf("migrate sqlite sink: %w", err)
		}
		if exists == 1 && n == 0 {
			if _, err := s.db.ExecContext(ctx, "ALTER TABLE "+a.table+" ADD COLUMN "+a.column+" "+a.decl); err != nil {
				return fmt.Errorf("migrate sqlite sink: add column %s.%s: %w", a.table, a.column, err)
			}
			if a.fill != "" {
				if _, err := s.db.ExecContext(ctx, a.fill); err != nil {
					return fmt.Errorf("migrate sqlite sink: fill column %s.%s: %w", a.table, a.column, err)
				}
			}
		}
	}
	for _, m := range migrations {
		if _, err := s.db.ExecContext(ctx, m); err != nil {
			return fmt.Errorf("migrate sqlite sink: %w", err)
		}
	}
	return nil
}

// Columns lists the signals table's columns in insert order; both sinks use it.
const columns = "event_id, type, site, anonymous_id, received_ms, bot, url, path, referrer, " +
	"utm_source, utm_medium, utm_campaign, utm_term, utm_content, name, experiment, variant, value, props"

const rowsPerInsert = 45 // 22 columns × 45 rows stays under SQLite's 999-variable limit

var insertSQL = func() [rowsPerInsert + 1]string {
	var q [rowsPerInsert + 1]string
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", 22), ",") + ")"
	for n := 1; n <= rowsPerInsert; n++ {
		q[n] = "INSERT INTO signals (" + columns + ", session_ms, event_ms, seq) VALUES " + strings.TrimSuffix(strings.Repeat(row+",", n), ",")
	}
	return q
}()

// Write stores the batch, raw signals and rollups, in one transaction: all of it or
// none. A transaction that failed is run again by the class of its error (classify.go);
// the error it gives up with is a *sink.WriteError naming the table that failed.
func (s *SQLite) Write(ctx context.Context, b *sink.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.retry.Do(ctx, "", func() error { return s.write(ctx, b) }); err != nil {
		var we *sink.WriteError
		if errors.As(err, &we) {
			we.Table = s.table
		}
		return fmt.Errorf("write %d signals to sqlite %s: %w", len(b.Signals), s.path, err)
	}
	s.rows.Add(len(b.Signals))
	return nil
}

func (s *SQLite) write(ctx context.Context, b *sink.Batch) error {
	s.table = "signals"
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var args []any
	if len(b.Signals) > 0 {
		args = make([]any, 0, 22*min(len(b.Signals), rowsPerInsert))
	}
	for off := 0; off < len(b.Signals); {
		n := min(len(b.Signals)-off, rowsPerInsert)
		args = args[:0]
		for i := off; i < off+n; i++ {
			sig := &b.Signals[i]
			args = append(appendArgs(args, sig), b.SessionOf(i), sig.At(), int64(sig.Seq))
		}
		if err := s.exec(ctx, tx, insertSQL[n], args); err != nil {
			return err
		}
		off += n
	}
	if err := writeRollups(ctx, tx, b, s.exec); err != nil {
		return err
	}
	return tx.Commit()
}

// exec runs a write statement in tx, preparing it once for the life of the sink: the
// multi-row inserts are long, and compiling them anew for every flush costs more than
// running them. Lock should be held.
func (s *SQLite) exec(ctx context.Context, tx *sql.Tx, query string, args []any) error {
	s.table = strings.Fields(query)[2] // INSERT INTO table ...
	st := s.stmts[query]
	if st == nil {
		var err error
		if st, err = s.db.PrepareContext(ctx, query); err != nil {
			return err
		}
		if s.stmts == nil {
			s.stmts = make(map[string]*sql.Stmt)
		}
		s.stmts[query] = st
	}
	_, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	return err
}

func appendArgs(args []any, sig *schemas.Signal) []any {
	var value any
	if sig.HasValue {
		value = sig.Value
	}
	bot := 0
	if sig.Bot {
		bot = 1
	}
	return append(args, sig.EventID, sig.Type.String(), sig.Site, sig.AnonymousID, sig.ReceivedAt, bot, sig.URL,
		sig.Path, sig.Referrer, sig.UTMSource, sig.UTMMedium, sig.UTMCampaign, sig.UTMTerm, sig.UTMContent,
		sig.Name, sig.Experiment, sig.Variant, value, sig.Props)
}

// Ping checks the database answers.
func (s *SQLite) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close closes the database.
func (s *SQLite) Close() error {
	s.mu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.stmts = nil
	s.mu.Unlock()
	return s.db.Close()
}

// VisitorSignals returns every signal of one visitor, oldest first.
func (s *SQLite) VisitorSignals(ctx context.Context, anonymousID string) ([]schemas.Signal, error) {
	return s.query(ctx, "WHERE anonymous_id = ? ORDER BY received_ms, rowid", anonymousID)
}

// Signals returns the signals received in [fromMs, toMs), oldest first.
func (s *SQLite) Signals(ctx context.Context, fromMs, toMs int64) ([]schemas.Signal, error) {
	return s.query(ctx, "WHERE received_ms >= ? AND received_ms < ? ORDER BY received_ms, rowid", fromMs, toMs)
}

// Newest returns the newest n signals received in [fromMs, toMs), oldest first. It reads
// only those n rows, from the end of the received_ms index.
func (s *SQLite) Newest(ctx context.Context, fromMs, toMs int64, n int) ([]schemas.Signal, error) {
	out, err := s.query(ctx, "WHERE received_ms >= ? AND received_ms < ? ORDER BY received_ms DESC, rowid DESC LIMIT ?", fromMs, toMs, n)
	slices.Reverse(out)
	return out, err
}

func (s *SQLite) query(ctx context.Context, where string, args ...any) ([]schemas.Signal, error) {
	out, _, err := s.scanSignals(ctx, false, where, args...)
	return out, err
}

func (s *SQLite) scanSignals(ctx context.Context, withSession bool, where string, args ...any) ([]schemas.Signal, []int64, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+columns+", session_ms, event_ms, seq FROM signals "+where, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("query signals: %w", err)
	}
	defer rows.Close()
	var (
		out      []schemas.Signal
		sessions []int64
	)
	for rows.Next() {
		var (
			sig     schemas.Signal
			typ     string
			bot     int
			value   sql.NullFloat64
			session int64
			seq     int64
		)
		if err := rows.Scan(&sig.EventID, &typ, &sig.Site, &sig.AnonymousID, &sig.ReceivedAt, &bot, &sig.URL,
			&sig.Path, &sig.Referrer, &sig.UTMSource, &sig.UTMMedium, &sig.UTMCampaign, &sig.UTMTerm, &sig.UTMContent,
			&sig.Name, &sig.Experiment, &sig.Variant, &value, &sig.Props, &session, &sig.EventAt, &seq); err != nil {
			return nil, nil, fmt.Errorf("scan signal: %w", err)
		}
		sig.Type, sig.Bot, sig.Value, sig.HasValue, sig.Seq = schemas.ParseType(typ), bot == 1, value.Float64, value.Valid, uint64(seq)
		out = append(out, sig)
		s.read.Inc()
		if withSession {
			sessions = append(sessions, session)
		}
	}
	return out, sessions, rows.Err()
}
