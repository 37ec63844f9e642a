package stitch

import (
	"context"
	"fmt"
	"time"

	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
)

// Reconciliation compares, for one period, the durable count of leads (lead_created in
// the events table) with the lossy one (form_submitted signals in the telemetry sink).
type Reconciliation struct {
	From, To      time.Time
	LeadsCreated  int64 // durable: lead_created events with occurred_at in [From, To)
	FormSubmitted int64 // lossy: form_submitted signals the sink holds for [From, To)
	// Undercount is LeadsCreated − FormSubmitted: the conversions telemetry missed
	// (blocked scripts, closed tabs, dropped beacons). Negative when telemetry saw more
	// submissions than there are leads (double submits, forms the backend refused).
	Undercount int64
	// UndercountRatio is Undercount ÷ LeadsCreated; 0 when there are no leads.
	UndercountRatio float64
}

// Reconcile counts lead_created in the events table for [from, to) and sets it against
// formSubmitted, the count of form_submitted signals the caller read from the sink for
// the same period.
func Reconcile(ctx context.Context, q sqldb.Querier, d sqldb.Dialect, from, to time.Time, formSubmitted int64) (Reconciliation, error) {
	r := Reconciliation{From: from, To: to, FormSubmitted: formSubmitted}
	if !from.Before(to) {
		return r, fmt.Errorf("reconcile leads: period %s – %s is empty", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	if formSubmitted < 0 {
		return r, fmt.Errorf("reconcile leads: form_submitted count %d is negative", formSubmitted)
	}
	n, err := events.Count(ctx, q, d, events.Filter{Name: EventLeadCreated, From: from, To: to})
	if err != nil {
		return r, fmt.Errorf("reconcile leads: %w", err)
	}
	r.LeadsCreated = n
	r.Undercount = n - formSubmitted
	if n > 0 {
		r.UndercountRatio = float64(r.Undercount) / float64(n)
	}
	return r, nil
}

// String is the one-line report `rung reconcile` prints.
func (r Reconciliation) String() string {
	return fmt.Sprintf("leads %s – %s: %d lead_created (durable), %d form_submitted (telemetry): telemetry undercount %d (%.1f%%)",
		r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339), r.LeadsCreated, r.FormSubmitted,
		r.Undercount, 100*r.UndercountRatio)
}
