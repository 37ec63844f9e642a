package stitch

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

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

// Validate says what would make the event fail its schema, naming the field.
func (l *LeadCreated) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidLead}, args...)...)
	}
	switch {
	case !ValidAnonymousID(l.EventID):
		return bad("event_id %q must be 8–64 characters of [A-Za-z0-9_-]", l.EventID)
	case l.OccurredAt.IsZero():
		return bad("occurred_at is not set")
	case l.LeadID == "" || utf8.RuneCountInString(l.LeadID) > 100:
		return bad("lead_id must be 1–100 characters, got %d", utf8.RuneCountInString(l.LeadID))
	case l.AnonymousID != "" && !ValidAnonymousID(l.AnonymousID):
		return bad("anonymous_id %q must be empty or 8–64 characters of [A-Za-z0-9_-]", l.AnonymousID)
	case len(l.Variants) > maxVariants:
		return bad("%d variants, at most %d", len(l.Variants), maxVariants)
	case l.Currency != "" && !isCurrency(l.Currency):
		return bad("currency %q must be three capital letters (ISO 4217)", l.Currency)
	}
	if a := l.Amount; a != nil && (math.IsNaN(*a) || *a < 0 || *a > 1e15) {
		return bad("amount %v must be a number from 0 to 1e15", *a)
	}
	return nil
}

func isCurrency(s string) bool {
	return len(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' && s[2] >= 'A' && s[2] <= 'Z'
}

// Event freezes l into an outbox event: the payload bytes are made now, ordered by the
// lead_id so that one lead's events ship in order.
func (l *LeadCreated) Event() (outbox.Event, error) {
	if err := l.Validate(); err != nil {
		return outbox.Event{}, err
	}
	payload, err := json.Marshal(l)
	if err != nil {
		return outbox.Event{}, fmt.Errorf("encode lead_created %s: %w", l.EventID, err)
	}
	return outbox.Event{ID: l.EventID, Name: EventLeadCreated, Version: 1, Key: l.LeadID,
		OccurredAt: l.OccurredAt, Payload: payload}, nil
}

// WriteLeadCreated writes l into the outbox inside tx, the transaction that creates the
// lead: the lead and its event commit together or not at all.
func WriteLeadCreated(ctx context.Context, tx *sql.Tx, d sqldb.Dialect, l LeadCreated) error {
	ev, err := l.Event()
	if err != nil {
		return err
	}
	return outbox.Write(ctx, tx, d, ev)
}
