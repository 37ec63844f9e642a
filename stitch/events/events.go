package events

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
)

// Event is one row of the events table.
type Event struct {
	ID         string // event_id: unique forever; the idempotency key
	Name       string // e.g. "deal_closed"
	Version    int    // schema version of the payload, from 1
	OccurredAt time.Time
	RecordedAt time.Time // set by Insert when zero
	SubjectID  string    // the entity the event is about, e.g. the lead_id

	// Promoted columns: copies of payload values, so they can be filtered and grouped
	// on without reading JSON.
	Source, Medium, Campaign, LandingPage, Variant string
	Amount                                         *float64

	Payload json.RawMessage // a JSON object; empty means {}
}

// Promotable lists the promoted columns by name, for declarations that name one (the
// Promote map and the By field of package tiers/eventlog's definitions and rollups).
var Promotable = []string{"subject_id", "source", "medium", "campaign", "landing_page", "variant", "amount"}

// Migrate creates the events table and its indexes if they are absent.
func Migrate(ctx context.Context, db sqldb.Execer, d sqldb.Dialect) error {
	if err := d.Validate(); err != nil {
		return err
	}
	ts, js := d.TimeType(), d.JSONType()
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS events (
	event_id     TEXT NOT NULL PRIMARY KEY,
	name         TEXT NOT NULL,
	version      INTEGER NOT NULL,
	occurred_at  ` + ts + ` NOT NULL,
	recorded_at  ` + ts + ` NOT NULL,
	subject_id   TEXT NOT NULL DEFAULT '',
	source       TEXT NOT NULL DEFAULT '',
	medium       TEXT NOT NULL DEFAULT '',
	campaign     TEXT NOT NULL DEFAULT '',
	landing_page TEXT NOT NULL DEFAULT '',
	variant      TEXT NOT NULL DEFAULT '',
	amount       ` + d.FloatType() + `,
	payload      ` + js + ` NOT NULL
)`,
		`CREATE INDEX IF NOT EXISTS events_name_occurred_at ON events (name, occurred_at)`,
		`CREATE INDEX IF NOT EXISTS events_subject_id ON events (subject_id)`,
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("migrate events table: %w", err)
		}
	}
	return nil
}

// Check reports the first thing wrong with e, naming the field.
func (e *Event) Check() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: event_id is empty", ErrInvalid)
	case len(e.ID) > 200:
		return fmt.Errorf("%w: event_id is %d bytes (max 200)", ErrInvalid, len(e.ID))
	case e.Name == "":
		return fmt.Errorf("%w %s: name is empty", ErrInvalid, e.ID)
	case sqldb.Ident(e.Name) != nil:
		return fmt.Errorf("%w %s: name %q is not lower_snake_case", ErrInvalid, e.ID, e.Name)
	case e.Version < 1:
		return fmt.Errorf("%w %s: version %d (want 1 or more)", ErrInvalid, e.ID, e.Version)
	case e.OccurredAt.IsZero():
		return fmt.Errorf("%w %s: occurred_at is zero", ErrInvalid, e.ID)
	}
	p := bytes.TrimSpace(e.Payload)
	if len(p) == 0 {
		return nil
	}
	if p[0] != '{' || !json.Valid(p) {
		return fmt.Errorf("%w %s: payload is not a JSON object", ErrInvalid, e.ID)
	}
	return nil
}

const columns = `event_id, name, version, occurred_at, recorded_at, subject_id,
	source, medium, campaign, landing_page, variant, amount, payload`

// Insert writes e into the events table through x, which is normally the caller's
// transaction so that the event commits with the change it records. An event_id that
// is already stored changes nothing and returns inserted=false. A zero RecordedAt is
// set to now. Nothing is written if e is malformed.
func Insert(ctx context.Context, x sqldb.Execer, d sqldb.Dialect, e Event) (inserted bool, err error) {
	if err := d.Validate(); err != nil {
		return false, err
	}
	if err := e.Check(); err != nil {
		return false, err
	}
	if e.RecordedAt.IsZero() {
		e.RecordedAt = time.Now()
	}
	payload := bytes.TrimSpace(e.Payload)
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	var amount any
	if e.Amount != nil {
		amount = *e.Amount
	}
	q := d.Rebind(`INSERT INTO events (` + columns + `)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (event_id) DO NOTHING`)
	res, err := x.ExecContext(ctx, q, e.ID, e.Name, e.Version, d.Time(e.OccurredAt), d.Time(e.RecordedAt),
		e.SubjectID, e.Source, e.Medium, e.Campaign, e.LandingPage, e.Variant, amount, d.JSONArg(payload))
	if err != nil {
		return false, fmt.Errorf("insert event %s (%s): %w", e.ID, e.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert event %s: rows affected: %w", e.ID, err)
	}
	return n == 1, nil
}

// Filter selects events for List and Count. Zero fields match everything; From is
// inclusive and To exclusive, both on occurred_at.
type Filter struct {
	Name      string
	SubjectID string
	From, To  time.Time
}

func (f Filter) where(d sqldb.Dialect) (string, []any) {
	var conds []string
	var args []any
	if f.Name != "" {
		conds, args = append(conds, "name = ?"), append(args, f.Name)
	}
	if f.SubjectID != "" {
		conds, args = append(conds, "subject_id = ?"), append(args, f.SubjectID)
	}
	if !f.From.IsZero() {
		conds, args = append(conds, "occurred_at >= ?"), append(args, d.Time(f.From))
	}
	if !f.To.IsZero() {
		conds, args = append(conds, "occurred_at < ?"), append(args, d.Time(f.To))
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Count counts the events f selects.
func Count(ctx context.Context, q sqldb.Querier, d sqldb.Dialect, f Filter) (int64, error) {
	w, args := f.where(d)
	var n int64
	if err := q.QueryRowContext(ctx, d.Rebind("SELECT count(*) FROM events"+w), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// List returns the events f selects in occurred_at order (ties by event_id).
func List(ctx context.Context, q sqldb.Querier, d sqldb.Dialect, f Filter) ([]Event, error) {
	w, args := f.where(d)
	rows, err := q.QueryContext(ctx, d.Rebind("SELECT "+columns+" FROM events"+w+" ORDER BY occurred_at, event_id"), args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var (
			e        Event
			occ, rec sqldb.Time
			amount   sql.NullFloat64
			payload  []byte
		)
		if err := rows.Scan(&e.ID, &e.Name, &e.Version, &occ, &rec, &e.SubjectID, &e.Source, &e.Medium,
			&e.Campaign, &e.LandingPage, &e.Variant, &amount, &payload); err != nil {
			return nil, fmt.Errorf("list events: scan: %w", err)
		}
		e.OccurredAt, e.RecordedAt = occ.Time, rec.Time
		if amount.Valid {
			v := amount.Float64
			e.Amount = &v
		}
		e.Payload = json.RawMessage(payload)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	return out, nil
}
