package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
)

// Project writes ev into the permanent events table through x (normally a transaction)
// and reports whether it was new. An event_id already there changes nothing: that unique
// key, not the broker's duplicate window, is what makes projection idempotent.
//
// The ordering key becomes subject_id; the promoted columns come from the payload (see
// Promote).
func Project(ctx context.Context, x sqldb.Execer, d sqldb.Dialect, ev Event) (inserted bool, err error) {
	row, err := Promote(ev)
	if err != nil {
		return false, err
	}
	return events.Insert(ctx, x, d, row)
}

// Promote maps an outbox event onto an events-table row. The filterable columns are
// read from the payload, by rung's attribution convention (what stitch puts in
// lead_created, and any other event that carries a visitor's attribution):
//
//   - source, medium, campaign: top-level keys of those names when present; else the
//     last_touch object's utm values, with an external referrer's host standing in for a
//     missing source (medium "referral").
//   - landing_page: the top-level landing_page.
//   - variant: a top-level "variant" string; else the "variants" object (experiment →
//     variant) as "experiment=variant" pairs, sorted, joined by ",".
//   - amount: a top-level number "amount".
//
// A payload that is not a JSON object, or whose convention keys have the wrong types, is
// an error wrapping ErrBadMessage.
func Promote(ev Event) (events.Event, error) {
	row := events.Event{ID: ev.ID, Name: ev.Name, Version: ev.version(), OccurredAt: ev.OccurredAt,
		SubjectID: ev.Key, Payload: ev.Payload}
	var p struct {
		Source      *string           `json:"source"`
		Medium      *string           `json:"medium"`
		Campaign    *string           `json:"campaign"`
		LandingPage string            `json:"landing_page"`
		Variant     string            `json:"variant"`
		Variants    map[string]string `json:"variants"`
		Amount      *float64          `json:"amount"`
		LastTouch   *struct {
			Source   string `json:"source"`
			Medium   string `json:"medium"`
			Campaign string `json:"campaign"`
			Referrer string `json:"referrer"`
		} `json:"last_touch"`
	}
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		return row, fmt.Errorf("%w: event %s (%s): payload: %v", ErrBadMessage, ev.ID, ev.Name, err)
	}
	if t := p.LastTouch; t != nil {
		row.Source, row.Medium, row.Campaign = t.Source, t.Medium, t.Campaign
		if row.Source == "" && t.Referrer != "" {
			if u, err := url.Parse(t.Referrer); err == nil && u.Hostname() != "" {
				row.Source = strings.ToLower(u.Hostname())
				if row.Medium == "" {
					row.Medium = "referral"
				}
			}
		}
	}
	for dst, src := range map[*string]*string{&row.Source: p.Source, &row.Medium: p.Medium, &row.Campaign: p.Campaign} {
		if src != nil {
			*dst = *src
		}
	}
	row.LandingPage = p.LandingPage
	row.Variant = p.Variant
	if row.Variant == "" && len(p.Variants) > 0 {
		pairs := make([]string, 0, len(p.Variants))
		for exp, v := range p.Variants {
			pairs = append(pairs, exp+"="+v)
		}
		sort.Strings(pairs)
		row.Variant = strings.Join(pairs, ",")
	}
	row.Amount = p.Amount
	return row, nil
}
