package stats

import (
	"context"
	"fmt"
	"time"

	"github.com/rungdev/rung/sink"
)

// ReferrerQuery asks which referrers a page's pageviews came with. Zero times default to
// the last 30 days; the range applies to when each pageview was received.
type ReferrerQuery struct {
	Site     string
	Path     string // required
	From, To time.Time
	Limit    int // default 20, at most 1000
}

// ReferrerReport is a page's referrers, most pageviews first.
type ReferrerReport struct {
	Site      string     `json:"site"`
	Path      string     `json:"path"`
	From      time.Time  `json:"from"`
	To        time.Time  `json:"to"`
	Limit     int        `json:"limit"`
	Referrers []Referrer `json:"referrers"`
}

// Referrer is one referrer ("" for none) and the pageviews that came with it.
type Referrer struct {
	Referrer  string `json:"referrer"`
	Pageviews int64  `json:"pageviews"`
}

// Referrers answers the referrer query from the raw signals.
func (q *Queries) Referrers(ctx context.Context, rq ReferrerQuery) (*ReferrerReport, error) {
	if rq.Path == "" {
		return nil, fmt.Errorf("%w: path: required", ErrQuery)
	}
	if rq.To.IsZero() {
		rq.To = q.o.Now()
	}
	if rq.From.IsZero() {
		rq.From = rq.To.Add(-30 * 24 * time.Hour)
	}
	if !rq.From.Before(rq.To) {
		return nil, fmt.Errorf("%w: from %s is not before to %s", ErrQuery, rq.From.Format(time.RFC3339), rq.To.Format(time.RFC3339))
	}
	switch {
	case rq.Limit == 0:
		rq.Limit = 20
	case rq.Limit < 0 || rq.Limit > 1000:
		return nil, fmt.Errorf("%w: limit %d: want 1 to 1000", ErrQuery, rq.Limit)
	}
	counts, err := q.r.Referrers(ctx, sink.ReferrerFilter{Site: rq.Site, Path: rq.Path,
		FromMs: rq.From.UnixMilli(), ToMs: rq.To.UnixMilli(), Limit: rq.Limit})
	if err != nil {
		return nil, err
	}
	rep := &ReferrerReport{Site: rq.Site, Path: rq.Path, From: rq.From.UTC(), To: rq.To.UTC(), Limit: rq.Limit,
		Referrers: make([]Referrer, len(counts))}
	for i, c := range counts {
		rep.Referrers[i] = Referrer{Referrer: c.Referrer, Pageviews: c.Pageviews}
	}
	return rep, nil
}
