package stats

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rungdev/rung/sink"
)

// Filter selects sessions: one site or (empty) every site, the sessions that started
// in [From, To) (zero times: the last 30 days; widened to whole hours, as the rollup
// keeps them), and the utm values of their landing pageview (empty: any).
type Filter struct {
	Site        string
	From, To    time.Time
	UTMSource   string
	UTMMedium   string
	UTMCampaign string
}

// Selection is the filter a report answers, its range as widened; every report writes
// it first.
type Selection struct {
	Site        string    `json:"site"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	UTMSource   string    `json:"utm_source,omitempty"`
	UTMMedium   string    `json:"utm_medium,omitempty"`
	UTMCampaign string    `json:"utm_campaign,omitempty"`
}

func (f *Filter) selection() Selection {
	return Selection{Site: f.Site, From: f.From, To: f.To, UTMSource: f.UTMSource, UTMMedium: f.UTMMedium, UTMCampaign: f.UTMCampaign}
}

// filter fills f's default range, widens it to whole hours, and returns the sink's
// filter for it.
func (q *Queries) filter(f *Filter) (sink.LandingFilter, error) {
	if f.To.IsZero() {
		f.To = q.o.Now()
	}
	if f.From.IsZero() {
		f.From = f.To.Add(-30 * 24 * time.Hour)
	}
	if !f.From.Before(f.To) {
		return sink.LandingFilter{}, fmt.Errorf("%w: from %s is not before to %s", ErrQuery, f.From.Format(time.RFC3339), f.To.Format(time.RFC3339))
	}
	from, to := sink.HourMs(f.From.UnixMilli()), f.To.UnixMilli()
	if h := sink.HourMs(to); h < to {
		to = h + 3600_000
	}
	f.From, f.To = time.UnixMilli(from).UTC(), time.UnixMilli(to).UTC()
	return sink.LandingFilter{Site: f.Site, FromMs: from, ToMs: to,
		UTMSource: f.UTMSource, UTMMedium: f.UTMMedium, UTMCampaign: f.UTMCampaign}, nil
}

// Counts are sessions, converting sessions and the conversion rate with its 95% Wilson
// interval.
type Counts struct {
	Sessions  int64    `json:"sessions"`
	Converted int64    `json:"converted"`
	CVR       float64  `json:"cvr"`
	CI        Interval `json:"ci"`
}

func counts(n, k int64) Counts {
	return Counts{Sessions: n, Converted: k, CVR: rate(k, n), CI: Wilson(k, n, Z95)}
}

// TrendQuery asks for sessions, conversions and CVR over time.
type TrendQuery struct {
	Filter
	// Interval is hour or day; empty picks hour for ranges up to three days, day
	// beyond.
	Interval string
}

// Intervals are the buckets a trend query accepts.
var Intervals = []string{"hour", "day"}

// maxPoints bounds a trend, so an hourly trend over years is refused, not drawn.
const maxPoints = 1500

// TrendReport is a trend: every bucket of the range, empty ones included, oldest first.
type TrendReport struct {
	Selection
	Interval string       `json:"interval"`
	Total    Counts       `json:"total"`
	Points   []TrendPoint `json:"points"`
}

// TrendPoint is one bucket: the sessions that started in [Start, Start + interval).
type TrendPoint struct {
	Start time.Time `json:"start"`
	Counts
}

// Trend answers the trend query from the landing-page rollup. Day buckets are UTC days.
func (q *Queries) Trend(ctx context.Context, tq TrendQuery) (*TrendReport, error) {
	f, err := q.filter(&tq.Filter)
	if err != nil {
		return nil, err
	}
	switch tq.Interval {
	case "":
		tq.Interval = "day"
		if f.ToMs-f.FromMs <= 3*24*3600_000 {
			tq.Interval = "hour"
		}
	case "hour", "day":
	default:
		return nil, fmt.Errorf("%w: interval %q: want hour or day", ErrQuery, tq.Interval)
	}
	step := int64(3600_000)
	if tq.Interval == "day" {
		step *= 24
	}
	first := f.FromMs - f.FromMs%step
	if n := (f.ToMs - first + step - 1) / step; n > maxPoints {
		return nil, fmt.Errorf("%w: %d %ss in this range: at most %d; choose a longer interval or a shorter range", ErrQuery, n, tq.Interval, maxPoints)
	}
	series, err := q.r.LandingSeries(ctx, f, step)
	if err != nil {
		return nil, err
	}
	got := make(map[int64]sink.SeriesCount, len(series))
	for _, s := range series {
		got[s.StartMs] = s
	}
	rep := &TrendReport{Selection: tq.Filter.selection(), Interval: tq.Interval, Points: []TrendPoint{}}
	var n, k int64
	for t := first; t < f.ToMs; t += step {
		s := got[t]
		rep.Points = append(rep.Points, TrendPoint{Start: time.UnixMilli(t).UTC(), Counts: counts(s.Sessions, s.Converted)})
		n, k = n+s.Sessions, k+s.Converted
	}
	rep.Total = counts(n, k)
	return rep, nil
}

// SourcesQuery asks where sessions came from: by one utm value of their landing
// pageview, or by its referrer's host.
type SourcesQuery struct {
	Filter
	By    string // utm_source (default), utm_medium, utm_campaign or referrer
	Limit int    // default 20, at most 1000
}

// SourceDimensions are what a sources query can break sessions down by.
var SourceDimensions = []string{"utm_source", "utm_medium", "utm_campaign", "referrer"}

// SourcesReport is the sessions by source, most sessions first (ties by value).
type SourcesReport struct {
	Selection
	By      string   `json:"by"`
	Limit   int      `json:"limit"`
	Total   int      `json:"total"` // sources, over all of them
	All     Counts   `json:"all"`   // every source together
	Sources []Source `json:"sources"`
}

// Source is one value of the dimension ("" for none: no utm value, no referrer).
type Source struct {
	Value string `json:"value"`
	Counts
}

// Sources answers the sources query: utm values from the landing-page rollup; the
// referrer from the raw signals (the rollup has no referrer), reduced to its host and
// counted under Options.Goals.
func (q *Queries) Sources(ctx context.Context, sq SourcesQuery) (*SourcesReport, error) {
	f, err := q.filter(&sq.Filter)
	if err != nil {
		return nil, err
	}
	if sq.By == "" {
		sq.By = "utm_source"
	}
	if !slices.Contains(SourceDimensions, sq.By) {
		return nil, fmt.Errorf("%w: by %q: want one of %s", ErrQuery, sq.By, strings.Join(SourceDimensions, ", "))
	}
	switch {
	case sq.Limit == 0:
		sq.Limit = 20
	case sq.Limit < 0 || sq.Limit > 1000:
		return nil, fmt.Errorf("%w: limit %d: want 1 to 1000", ErrQuery, sq.Limit)
	}
	var groups []sink.GroupCount
	if sq.By == "referrer" {
		if len(q.o.Goals) == 0 {
			return nil, fmt.Errorf("%w: by referrer: the conversion goals are not known here", ErrQuery)
		}
		groups, err = q.r.SessionReferrers(ctx, f, q.o.Goals)
	} else {
		groups, err = q.r.LandingGroups(ctx, f, []string{sq.By})
	}
	if err != nil {
		return nil, err
	}
	sums := map[string]*[2]int64{}
	var n, k int64
	for _, g := range groups {
		v := g.Keys[0]
		if sq.By == "referrer" {
			v = ReferrerHost(v)
		}
		s := sums[v]
		if s == nil {
			s = new([2]int64)
			sums[v] = s
		}
		s[0] += g.Sessions
		s[1] += g.Converted
		n, k = n+g.Sessions, k+g.Converted
	}
	out := make([]Source, 0, len(sums))
	for v, s := range sums {
		out = append(out, Source{Value: v, Counts: counts(s[0], s[1])})
	}
	slices.SortFunc(out, func(a, b Source) int {
		if c := cmp.Compare(b.Sessions, a.Sessions); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
	rep := &SourcesReport{Selection: sq.Filter.selection(), By: sq.By, Limit: sq.Limit, Total: len(out), All: counts(n, k)}
	rep.Sources = out[:min(len(out), sq.Limit)]
	return rep, nil
}

// ReferrerHost reduces a referrer to its host, lower case and without "www.", so one
// site's pages count together; what is not an absolute URL is kept as sent.
func ReferrerHost(ref string) string {
	u, err := url.Parse(ref)
	if err != nil || u.Host == "" {
		return ref
	}
	return strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
}

// Sites lists the sites with sessions in f's range (f's site and utm values are not
// applied), the busiest first.
func (q *Queries) Sites(ctx context.Context, f Filter) ([]Source, error) {
	lf, err := q.filter(&f)
	if err != nil {
		return nil, err
	}
	groups, err := q.r.LandingGroups(ctx, sink.LandingFilter{FromMs: lf.FromMs, ToMs: lf.ToMs}, []string{"site"})
	if err != nil {
		return nil, err
	}
	out := make([]Source, len(groups))
	for i, g := range groups {
		out[i] = Source{Value: g.Keys[0], Counts: counts(g.Sessions, g.Converted)}
	}
	slices.SortStableFunc(out, func(a, b Source) int { return cmp.Compare(b.Sessions, a.Sessions) })
	return out, nil
}
