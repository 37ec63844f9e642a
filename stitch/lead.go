package stitch

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/stitch/outbox"
	"github.com/rungdev/rung/stitch/sqldb"
)

// EventLeadCreated is the event's name: in the outbox, on the broker, in the events table.
const EventLeadCreated = "lead_created"

// LeadCreated is the lead_created v1 business event (schemas/json/lead_created.v1.json):
// a visitor became a lead, with the attribution they had at that moment copied in. Once
// Event has turned it into bytes, later edits to the lead and later visits change nothing.
type LeadCreated struct {
	EventID     string            `json:"event_id"`
	OccurredAt  time.Time         `json:"occurred_at"`
	LeadID      string            `json:"lead_id"`
	AnonymousID string            `json:"anonymous_id"`
	Site        string            `json:"site,omitempty"`
	FirstTouch  Touch             `json:"first_touch,omitzero"`
	LastTouch   Touch             `json:"last_touch,omitzero"`
	LandingPage string            `json:"landing_page,omitempty"`
	FirstSeenAt time.Time         `json:"first_seen_at,omitzero"`
	Variants    map[string]string `json:"variants,omitempty"`
	Amount      *float64          `json:"amount,omitempty"`
	Currency    string            `json:"currency,omitempty"` // ISO 4217, e.g. "EUR"
}

// NewLeadCreated makes the event for lead leadID, created at at, by visitor a (the zero
// Attribution for a lead without an anonymous_id). It copies a, so the caller may reuse
// it. The event_id is a fresh UUIDv7 (time-ordered, so the events table's key index
// stays local).
func NewLeadCreated(leadID string, a Attribution, at time.Time) LeadCreated {
	a = a.clone()
	return LeadCreated{
		EventID: uuid.Must(uuid.NewV7()).String(), OccurredAt: at.UTC(), LeadID: leadID,
		AnonymousID: a.AnonymousID, Site: a.Site, FirstTouch: a.FirstTouch, LastTouch: a.LastTouch,
		LandingPage: a.LandingPage, FirstSeenAt: a.FirstSeen, Variants: a.Variants,
	}
}

// leadCreatedVersion is the version of lead_created this package makes: its schema is
// schemas/json/lead_created.v1.json.
const leadCreatedVersion = 1

// Event freezes l into an outbox event: the payload bytes are made now, ordered by the
// lead_id so that one lead's events ship in order. The payload is validated against
// lead_created's schema in reg; a failure is ErrInvalidLead, naming the field.
func (l *LeadCreated) Event(reg *schemas.Registry) (outbox.Event, error) {
	// What JSON cannot say, the schema cannot check.
	if l.OccurredAt.IsZero() {
		return outbox.Event{}, fmt.Errorf("%w: occurred_at is not set", ErrInvalidLead)
	}
	if a := l.Amount; a != nil && (math.IsNaN(*a) || math.IsInf(*a, 0)) {
		return outbox.Event{}, fmt.Errorf("%w: amount %v is not a JSON number", ErrInvalidLead, *a)
	}
	payload, err := json.Marshal(l)
	if err != nil {
		return outbox.Event{}, fmt.Errorf("encode lead_created %s: %w", l.EventID, err)
	}
	schema := fmt.Sprintf("%s.v%d", EventLeadCreated, leadCreatedVersion)
	if err := reg.Validate(schema, payload); err != nil {
		var ve *schemas.ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) == 0 {
			return outbox.Event{}, fmt.Errorf("validate lead_created %s: %w", l.EventID, err)
		}
		p := ve.Problems[0]
		if p.Pointer == "" {
			return outbox.Event{}, fmt.Errorf("%w: %s", ErrInvalidLead, p.Reason)
		}
		return outbox.Event{}, fmt.Errorf("%w: %s: %s", ErrInvalidLead, strings.TrimPrefix(p.Pointer, "/"), p.Reason)
	}
	return outbox.Event{ID: l.EventID, Name: EventLeadCreated, Version: leadCreatedVersion, Key: l.LeadID,
		OccurredAt: l.OccurredAt, Payload: payload}, nil
}

// WriteLeadCreated writes l into the outbox inside tx, the transaction that creates the
// lead: the lead and its event commit together or not at all. reg validates it (see Event).
func WriteLeadCreated(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, reg *schemas.Registry, l LeadCreated) error {
	ev, err := l.Event(reg)
	if err != nil {
		return err
	}
	return outbox.Write(ctx, tx, d, ev)
}
