package outbox

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rungdev/rung/stitch/sqldb"
)

// Event is one business event as the outbox carries it. The payload is frozen when the
// event is made: the outbox, the broker and the events table all hold these bytes.
type Event struct {
	ID         string          // event_id: 8–64 of [A-Za-z0-9_-]; the dedup key everywhere
	Name       string          // e.g. "lead_created": [a-z][a-z0-9_]*, at most 100 bytes
	Version    int             // payload schema version, ≥ 1 (0 means 1)
	Key        string          // ordering key, e.g. the lead_id: one key's events ship in order
	OccurredAt time.Time       // when the business change happened
	Payload    json.RawMessage // a JSON object
}

// Validate says what is wrong with e, if anything, naming the field.
func (e *Event) Validate() error {
	if !validID(e.ID) {
		return fmt.Errorf("%w: event_id %q must be 8–64 characters of [A-Za-z0-9_-]", ErrInvalidEvent, e.ID)
	}
	if !validName(e.Name) {
		return fmt.Errorf("%w: event %s: name %q must match [a-z][a-z0-9_]* and be at most 100 bytes", ErrInvalidEvent, e.ID, e.Name)
	}
	if e.Version < 0 {
		return fmt.Errorf("%w: event %s: version %d is negative", ErrInvalidEvent, e.ID, e.Version)
	}
	if e.Key == "" || len(e.Key) > 200 {
		return fmt.Errorf("%w: event %s: ordering key must be 1–200 bytes, got %d", ErrInvalidEvent, e.ID, len(e.Key))
	}
	if e.OccurredAt.IsZero() {
		return fmt.Errorf("%w: event %s: occurred_at is not set", ErrInvalidEvent, e.ID)
	}
	p := bytes.TrimSpace(e.Payload)
	if len(p) == 0 || p[0] != '{' || !json.Valid(p) {
		return fmt.Errorf("%w: event %s: payload must be a JSON object", ErrInvalidEvent, e.ID)
	}
	return nil
}

func (e *Event) version() int {
	if e.Version == 0 {
		return 1
	}
	return e.Version
}

func validID(s string) bool {
	if len(s) < 8 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// validName keeps names safe as a NATS subject token and as a label value.
func validName(s string) bool {
	if s == "" || len(s) > 100 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

const insertSQL = `INSERT INTO rung_outbox (event_id, name, version, ordering_key, occurred_at, payload) VALUES (?, ?, ?, ?, ?, ?)`

// Write adds ev to the outbox inside the caller's transaction tx, so the business change
// and its event commit together or not at all. Nothing is shipped before tx commits; if
// tx rolls back the event never existed. Write does not commit or roll back tx.
func Write(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, ev Event) error {
	if err := d.Validate(); err != nil {
		return err
	}
	if err := ev.Validate(); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, d.Rebind(insertSQL), ev.ID, ev.Name, ev.version(), ev.Key,
		d.Time(ev.OccurredAt), d.JSONArg(ev.Payload)); err != nil {
		return fmt.Errorf("write %s %s to the outbox: %w", ev.Name, ev.ID, err)
	}
	return nil
}

// WritePgx is Write for a backend that talks to PostgreSQL through pgx directly.
func WritePgx(ctx context.Context, tx pgx.Tx, ev Event) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sqldb.Postgres.Rebind(insertSQL), ev.ID, ev.Name, ev.version(), ev.Key,
		ev.OccurredAt.UTC().Truncate(time.Microsecond), string(ev.Payload)); err != nil {
		return fmt.Errorf("write %s %s to the outbox: %w", ev.Name, ev.ID, err)
	}
	return nil
}
