package eventlog

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
)

var aTime = time.Unix(1, 0)

// Log emits defined events into the events table and keeps its incremental rollups. Its
// fields are set once before use; a Log is then safe for concurrent use.
type Log struct {
	Dialect sqldb.Dialect
	Defs    *Definitions
	// Rollups are kept incrementally: each newly inserted event is added to every rollup
	// it matches, in the emitting transaction.
	Rollups []Rollup
	// Now stamps recorded_at (and occurred_at when the caller leaves it zero);
	// time.Now when nil.
	Now func() time.Time
}

// Emit validates e against its definition, fills what the definition derives (event_id
// when empty, subject_id and promoted columns from the payload, occurred_at when zero),
// and inserts it through tx — the transaction that makes the change the event records,
// so that the two commit together or not at all. The payload is stored as given: values
// are frozen now, and a later edit of the row they came from does not reach the event.
//
// A duplicate event_id inserts nothing, adds to no rollup and returns inserted=false.
// It returns the event as stored.
func (l *Log) Emit(ctx context.Context, tx sqldb.Execer, e events.Event) (stored events.Event, inserted bool, err error) {
	if l.Defs == nil {
		return e, false, fmt.Errorf("emit %s: the log has no definitions", e.Name)
	}
	now := time.Now
	if l.Now != nil {
		now = l.Now
	}
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	if e.OccurredAt.IsZero() {
		e.OccurredAt = now()
	}
	e.RecordedAt = now()
	if len(e.Payload) == 0 {
		e.Payload = json.RawMessage("{}")
	}
	if err := l.Defs.Validate(e.Name, e.Version, e.Payload); err != nil {
		return e, false, fmt.Errorf("emit %s: %w", e.ID, err)
	}
	def, _ := l.Defs.Lookup(e.Name, e.Version)
	if err := promote(&e, def); err != nil {
		return e, false, fmt.Errorf("emit %s: %w", e.ID, err)
	}
	inserted, err = events.Insert(ctx, tx, l.Dialect, e)
	if err != nil || !inserted {
		return e, false, err
	}
	for _, r := range l.Rollups {
		if err := r.Add(ctx, tx, l.Dialect, e); err != nil {
			return e, true, fmt.Errorf("emit %s: %w", e.ID, err)
		}
	}
	return e, true, nil
}

// promote copies the declared payload values into e's columns, leaving alone any the
// caller set.
func promote(e *events.Event, def Definition) error {
	if def.Subject == "" && len(def.Promote) == 0 {
		return nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(e.Payload, &top); err != nil {
		return fmt.Errorf("%w: payload: %w", events.ErrInvalid, err)
	}
	str := func(k string) (string, error) {
		raw, ok := top[k]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			return s, nil
		}
		var n json.Number
		if err := json.Unmarshal(raw, &n); err == nil {
			return n.String(), nil
		}
		return "", fmt.Errorf("%w: payload key %q is neither a string nor a number", events.ErrInvalid, k)
	}
	if def.Subject != "" && e.SubjectID == "" {
		s, err := str(def.Subject)
		if err != nil {
			return err
		}
		e.SubjectID = s
	}
	for col, k := range def.Promote {
		s, err := str(k)
		if err != nil {
			return err
		}
		if s == "" {
			continue
		}
		switch col {
		case "source":
			setIfEmpty(&e.Source, s)
		case "medium":
			setIfEmpty(&e.Medium, s)
		case "campaign":
			setIfEmpty(&e.Campaign, s)
		case "landing_page":
			setIfEmpty(&e.LandingPage, s)
		case "variant":
			setIfEmpty(&e.Variant, s)
		case "amount":
			if e.Amount == nil {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return fmt.Errorf("%w: payload key %q: amount %q is not a number", events.ErrInvalid, k, s)
				}
				e.Amount = &v
			}
		}
	}
	return nil
}

func setIfEmpty(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}
