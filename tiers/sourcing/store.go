package sourcing

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/rungdev/rung/stitch/sqldb"
)

// Any disables the version check of Append.
const Any int64 = -1

// Event is an event to append.
type Event struct {
	ID            string    // unique; a UUID when empty
	Type          string    // e.g. "deal_opened"
	SchemaVersion int       // shape of Data; 1 when zero
	OccurredAt    time.Time // now when zero
	Data          json.RawMessage
}

// Record is a stored event, as read back (after upcasting).
type Record struct {
	StreamID      string
	Version       int64 // 1 for the stream's first event
	ID            string
	Type          string
	SchemaVersion int
	OccurredAt    time.Time
	RecordedAt    time.Time
	Data          json.RawMessage
}

// Upcaster turns Data of Type at version From into version From+1. Upcasters chain:
// a v1 event read by a store that knows 1→2 and 2→3 comes out as v3. The stored row
// is never rewritten.
type Upcaster struct {
	Type string
	From int
	Up   func(data json.RawMessage) (json.RawMessage, error)
}

type upKey struct {
	typ  string
	from int
}

// Store is an event store on one database. Safe for concurrent use.
type Store struct {
	db  *sql.DB
	d   sqldb.Dialect
	up  map[upKey]Upcaster
	now func() time.Time
}

// New returns a store. Two upcasters for the same type and version are an error.
func New(db *sql.DB, d sqldb.Dialect, ups ...Upcaster) (*Store, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	s := &Store{db: db, d: d, up: map[upKey]Upcaster{}, now: time.Now}
	for _, u := range ups {
		k := upKey{u.Type, u.From}
		if u.Up == nil || u.From < 1 || sqldb.Ident(u.Type) != nil {
			return nil, fmt.Errorf("%w upcaster %s v%d: needs an event type, a version from 1 and a function", ErrInvalid, u.Type, u.From)
		}
		if _, dup := s.up[k]; dup {
			return nil, fmt.Errorf("%w upcaster %s v%d: declared twice", ErrInvalid, u.Type, u.From)
		}
		s.up[k] = u
	}
	return s, nil
}

// Migrate creates the store's tables if absent. stream_events refuses UPDATE and
// DELETE (a trigger on both backends): appending is the only write.
func (s *Store) Migrate(ctx context.Context) error {
	ts, js := s.d.TimeType(), s.d.JSONType()
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS stream_events (
	stream_id      TEXT NOT NULL,
	version        BIGINT NOT NULL,
	event_id       TEXT NOT NULL UNIQUE,
	type           TEXT NOT NULL,
	schema_version INTEGER NOT NULL,
	occurred_at    ` + ts + ` NOT NULL,
	recorded_at    ` + ts + ` NOT NULL,
	data           ` + js + ` NOT NULL,
	PRIMARY KEY (stream_id, version)
)`,
		`CREATE TABLE IF NOT EXISTS stream_snapshots (
	stream_id          TEXT NOT NULL,
	projection         TEXT NOT NULL,
	projection_version INTEGER NOT NULL,
	version            BIGINT NOT NULL,
	last_occurred_at   ` + ts + ` NOT NULL,
	state              ` + js + ` NOT NULL,
	taken_at           ` + ts + ` NOT NULL,
	PRIMARY KEY (stream_id, projection, projection_version, version)
)`,
	}
	if s.d == sqldb.Postgres {
		stmts = append(stmts,
			`CREATE OR REPLACE FUNCTION stream_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'stream_events is append-only: % refused', TG_OP; END $$`,
			`DROP TRIGGER IF EXISTS stream_events_append_only ON stream_events`,
			`CREATE TRIGGER stream_events_append_only BEFORE UPDATE OR DELETE ON stream_events
FOR EACH ROW EXECUTE FUNCTION stream_events_append_only()`)
	} else {
		stmts = append(stmts,
			`CREATE TRIGGER IF NOT EXISTS stream_events_no_update BEFORE UPDATE ON stream_events
BEGIN SELECT RAISE(ABORT, 'stream_events is append-only: UPDATE refused'); END`,
			`CREATE TRIGGER IF NOT EXISTS stream_events_no_delete BEFORE DELETE ON stream_events
BEGIN SELECT RAISE(ABORT, 'stream_events is append-only: DELETE refused'); END`)
	}
	for _, st := range stmts {
		if _, err := s.db.ExecContext(ctx, st); err != nil {
			return fmt.Errorf("migrate event store: %w", err)
		}
	}
	return nil
}

// Append adds events to the end of stream, atomically, if the stream is at version
// expected (0 for a new stream, Any to skip the check). It returns the stream's new
// version. A stale expected version — or a concurrent append that won the race —
// returns a *ConflictError and writes nothing.
func (s *Store) Append(ctx context.Context, stream string, expected int64, evs ...Event) (int64, error) {
	if stream == "" || len(stream) > 200 {
		return 0, fmt.Errorf("%w: stream id %q", ErrInvalid, stream)
	}
	if len(evs) == 0 {
		return 0, fmt.Errorf("%w: append to %s: no events", ErrInvalid, stream)
	}
	now := s.now()
	for i := range evs {
		e := &evs[i]
		if e.ID == "" {
			e.ID = uuid.NewString()
		}
		if e.SchemaVersion == 0 {
			e.SchemaVersion = 1
		}
		if e.OccurredAt.IsZero() {
			e.OccurredAt = now
		}
		if err := sqldb.Ident(e.Type); err != nil {
			return 0, fmt.Errorf("%w: append to %s: event %d type: %w", ErrInvalid, stream, i, err)
		}
		if e.SchemaVersion < 1 {
			return 0, fmt.Errorf("%w: append to %s: event %d schema version %d", ErrInvalid, stream, i, e.SchemaVersion)
		}
		if p := bytes.TrimSpace(e.Data); len(p) == 0 || p[0] != '{' || !json.Valid(p) {
			return 0, fmt.Errorf("%w: append to %s: event %d (%s) data is not a JSON object", ErrInvalid, stream, i, e.Type)
		}
	}
	var version int64
	err := sqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		cur, err := s.head(ctx, tx, stream)
		if err != nil {
			return err
		}
		if expected != Any && cur != expected {
			return &ConflictError{Stream: stream, Expected: expected, Actual: cur}
		}
		q := s.d.Rebind(`INSERT INTO stream_events
(stream_id, version, event_id, type, schema_version, occurred_at, recorded_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		for i, e := range evs {
			version = cur + int64(i) + 1
			if _, err := tx.ExecContext(ctx, q, stream, version, e.ID, e.Type, e.SchemaVersion,
				s.d.Time(e.OccurredAt), s.d.Time(now), s.d.JSONArg(e.Data)); err != nil {
				return fmt.Errorf("append %s to %s at version %d: %w", e.Type, stream, version, err)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, ErrConflict) && sqldb.IsUniqueViolation(err) && expected != Any {
		// Another writer took the version between our read and our insert.
		actual, herr := s.head(ctx, s.db, stream)
		if herr != nil {
			actual = -1
		}
		return 0, fmt.Errorf("%w (%w)", &ConflictError{Stream: stream, Expected: expected, Actual: actual}, err)
	}
	if err != nil {
		return 0, err
	}
	return version, nil
}

func (s *Store) head(ctx context.Context, q sqldb.Querier, stream string) (int64, error) {
	var v int64
	if err := q.QueryRowContext(ctx, s.d.Rebind(`SELECT coalesce(max(version), 0) FROM stream_events WHERE stream_id = ?`), stream).Scan(&v); err != nil {
		return 0, fmt.Errorf("read version of stream %s: %w", stream, err)
	}
	return v, nil
}

// Version is the stream's current version (0 when it has no events).
func (s *Store) Version(ctx context.Context, stream string) (int64, error) {
	return s.head(ctx, s.db, stream)
}

// Read returns the events of stream with version > after and, unless until is zero,
// occurred_at <= until, in version order, upcast to their latest schema versions.
func (s *Store) Read(ctx context.Context, stream string, after int64, until time.Time) ([]Record, error) {
	q := `SELECT version, event_id, type, schema_version, occurred_at, recorded_at, data
FROM stream_events WHERE stream_id = ? AND version > ?`
	args := []any{stream, after}
	if !until.IsZero() {
		q += ` AND occurred_at <= ?`
		args = append(args, s.d.Time(until))
	}
	rows, err := s.db.QueryContext(ctx, s.d.Rebind(q+` ORDER BY version`), args...)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r := Record{StreamID: stream}
		var occ, rec sqldb.Time
		var data []byte
		if err := rows.Scan(&r.Version, &r.ID, &r.Type, &r.SchemaVersion, &occ, &rec, &data); err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		r.OccurredAt, r.RecordedAt, r.Data = occ.Time, rec.Time, json.RawMessage(data)
		if err := s.upcast(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	return out, nil
}

func (s *Store) upcast(r *Record) error {
	for {
		u, ok := s.up[upKey{r.Type, r.SchemaVersion}]
		if !ok {
			return nil
		}
		data, err := u.Up(r.Data)
		if err != nil {
			return fmt.Errorf("upcast %s %s v%d (stream %s version %d): %w", r.ID, r.Type, r.SchemaVersion, r.StreamID, r.Version, err)
		}
		r.Data, r.SchemaVersion = data, r.SchemaVersion+1
	}
}
