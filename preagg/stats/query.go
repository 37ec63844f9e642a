package stats

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rungdev/rung/sink"
)

// Reader reads the rollups back; both sinks are one.
type Reader interface {
	VariantCounts(ctx context.Context, f sink.ExperimentFilter) ([]sink.VariantCount, error)
	Experiments(ctx context.Context, site string) ([]sink.ExperimentInfo, error)
	Referrers(ctx context.Context, f sink.ReferrerFilter) ([]sink.ReferrerCount, error)
	LandingGroups(ctx context.Context, f sink.LandingFilter, by []string) ([]sink.GroupCount, error)
	LandingSeries(ctx context.Context, f sink.LandingFilter, stepMs int64) ([]sink.SeriesCount, error)
	SessionReferrers(ctx context.Context, f sink.LandingFilter, goals []string) ([]sink.GroupCount, error)
	BotSignals(ctx context.Context, site string, fromMs, toMs int64) (int64, error)
}

// Options tunes the statistics; the zero value takes the defaults.
type Options struct {
	// MinVisitors per variant below which a result carries a minimum-sample warning;
	// default 100.
	MinVisitors int64
	// MinConversions per variant (and non-conversions) below which the normal
	// approximations behind the intervals are flagged; default 5.
	MinConversions int64
	// MixingSD is τ of the sequential interval's normal mixture: the size of the
	// absolute CVR differences experiments are expected to have. It must be chosen
	// before looking at the data; default 0.01 (one percentage point).
	MixingSD float64
	// SRMThreshold is the p-value below which a sample-ratio mismatch is flagged;
	// default 0.001.
	SRMThreshold float64
	// Now is the clock for default time ranges; default time.Now.
	Now func() time.Time
	// Goals are the event names the pre-aggregator counts as conversions, for the one
	// breakdown read from raw signals (sources by referrer); without them that
	// breakdown is refused.
	Goals []string
}

func (o *Options) defaults() {
	if o.MinVisitors <= 0 {
		o.MinVisitors = 100
	}
	if o.MinConversions <= 0 {
		o.MinConversions = 5
	}
	if o.MixingSD <= 0 {
		o.MixingSD = 0.01
	}
	if o.SRMThreshold <= 0 {
		o.SRMThreshold = 0.001
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Queries answers the landing-page and experiment questions from the rollups. It is
// safe for concurrent use.
type Queries struct {
	r Reader
	o Options
}

// NewQueries returns the queries over r.
func NewQueries(r Reader, o Options) *Queries {
	o.defaults()
	return &Queries{r: r, o: o}
}

// LandingQuery selects sessions by its Filter and orders their landing pages.
type LandingQuery struct {
	Filter
	Sort   string // sessions (default), converted, cvr, cvr_low, path
	Order  string // desc (default; asc for path) or asc
	Limit  int    // default 50, at most 1000
	Offset int
}

// LandingSorts are the orders a landing-page query accepts.
var LandingSorts = []string{"sessions", "converted", "cvr", "cvr_low", "path"}

// LandingReport is one page of landing pages, with the totals over all of them.
type LandingReport struct {
	Selection
	Sort       string        `json:"sort"`
	Order      string        `json:"order"`
	Limit      int           `json:"limit"`
	Offset     int           `json:"offset"`
	Total      int           `json:"total"` // landing pages matching, over all pages
	Sessions   int64         `json:"sessions"`
	Converted  int64         `json:"converted"`
	CVR        float64       `json:"cvr"`
	BotSignals int64         `json:"bot_signals"` // received in the range and left out of every count
	Pages      []LandingPage `json:"pages"`
}

// LandingPage is one landing page of one site: its sessions, converting sessions and
// conversion rate with its 95% Wilson interval.
type LandingPage struct {
	Site string `json:"site"`
	Path string `json:"path"`
	Counts
}

// LandingPages answers the landing-page CVR query.
func (q *Queries) LandingPages(ctx context.Context, lq LandingQuery) (*LandingReport, error) {
	f, err := q.filter(&lq.Filter)
	if err != nil {
		return nil, err
	}
	if lq.Sort == "" {
		lq.Sort = "sessions"
	}
	if !contains(LandingSorts, lq.Sort) {
		return nil, fmt.Errorf("%w: sort %q: want one of %s", ErrQuery, lq.Sort, strings.Join(LandingSorts, ", "))
	}
	switch lq.Order {
	case "":
		lq.Order = "desc"
		if lq.Sort == "path" {
			lq.Order = "asc"
		}
	case "asc", "desc":
	default:
		return nil, fmt.Errorf("%w: order %q: want asc or desc", ErrQuery, lq.Order)
	}
	switch {
	case lq.Limit == 0:
		lq.Limit = 50
	case lq.Limit < 0 || lq.Limit > 1000:
		return nil, fmt.Errorf("%w: limit %d: want 1 to 1000", ErrQuery, lq.Limit)
	}
	if lq.Offset < 0 {
		return nil, fmt.Errorf("%w: offset %d: must not be negative", ErrQuery, lq.Offset)
	}
	groups, err := q.r.LandingGroups(ctx, f, []string{"site", "landing_path"})
	if err != nil {
		return nil, err
	}
	bots, err := q.r.BotSignals(ctx, f.Site, f.FromMs, f.ToMs)
	if err != nil {
		return nil, err
	}
	rep := &LandingReport{Selection: lq.selection(),
		Sort: lq.Sort, Order: lq.Order, Limit: lq.Limit, Offset: lq.Offset, Total: len(groups), BotSignals: bots}
	pages := make([]LandingPage, len(groups))
	for i, c := range groups {
		pages[i] = LandingPage{Site: c.Keys[0], Path: c.Keys[1], Counts: counts(c.Sessions, c.Converted)}
		rep.Sessions += c.Sessions
		rep.Converted += c.Converted
	}
	rep.CVR = rate(rep.Converted, rep.Sessions)
	sortPages(pages, lq.Sort, lq.Order == "asc")
	lo := min(lq.Offset, len(pages))
	hi := min(lo+lq.Limit, len(pages))
	rep.Pages = pages[lo:hi]
	return rep, nil
}

// sortPages orders pages by key; ties always fall back to more sessions, then path,
// then site, so pagination is stable.
func sortPages(pages []LandingPage, key string, asc bool) {
	val := func(p *LandingPage) float64 {
		switch key {
		case "converted":
			return float64(p.Converted)
		case "cvr":
			return p.CVR
		case "cvr_low":
			return p.CI.Low
		}
		return float64(p.Sessions)
	}
	sort.SliceStable(pages, func(i, j int) bool {
		a, b := &pages[i], &pages[j]
		if key == "path" {
			if a.Path != b.Path {
				if asc {
					return a.Path < b.Path
				}
				return a.Path > b.Path
			}
		} else if va, vb := val(a), val(b); va != vb {
			if asc {
				return va < vb
			}
			return va > vb
		}
		if a.Sessions != b.Sessions {
			return a.Sessions > b.Sessions
		}
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Site < b.Site
	})
}

// ExperimentQuery names an experiment and how to read it. Zero times mean all time; the
// range applies to each visitor's first exposure.
type ExperimentQuery struct {
	ID       string
	Site     string
	From, To time.Time
	Control  string             // the variant others are compared with; default "control"
	Weights  map[string]float64 // the planned split; default equal
}

// ExperimentReport is the result of an experiment: every variant against the control,
// the sample-ratio check and the warnings a reader must see before trusting it.
type ExperimentReport struct {
	Experiment string    `json:"experiment"`
	Site       string    `json:"site"`
	From       time.Time `json:"from,omitzero"`
	To         time.Time `json:"to,omitzero"`
	Control    string    `json:"control"`
	Confidence float64   `json:"confidence"`
	Visitors   int64     `json:"visitors"`
	Converted  int64     `json:"converted"`
	Variants   []Variant `json:"variants"` // the control first, then by name
	SRM        *SRM      `json:"srm,omitempty"`
	// EnoughData is false when any variant is under the minimum sample.
	EnoughData bool     `json:"enough_data"`
	Warnings   []string `json:"warnings"`
}

// Variant is one variant's visitors, converted visitors and conversion rate with its 95%
// Wilson interval, and, for all but the control, its lift over the control.
type Variant struct {
	Name          string   `json:"name"`
	Control       bool     `json:"control"`
	Visitors      int64    `json:"visitors"`
	Converted     int64    `json:"converted"`
	CVR           float64  `json:"cvr"`
	CI            Interval `json:"ci"`
	ExpectedShare float64  `json:"expected_share"`
	ObservedShare float64  `json:"observed_share"`
	Lift          *Lift    `json:"lift,omitempty"`
}

// Lift compares a variant with the control.
type Lift struct {
	// Relative is CVR/CVR(control) - 1, with its 95% interval (log risk ratio); absent
	// when the control or the variant has no conversions.
	Relative *float64  `json:"relative"`
	CI       *Interval `json:"ci"`
	// Difference is CVR - CVR(control), in absolute terms.
	Difference float64 `json:"difference"`
	// Z and PValue are the two-proportion z-test, two-sided; absent without variance.
	Z           *float64 `json:"z"`
	PValue      *float64 `json:"p_value"`
	Significant bool     `json:"significant"` // p < 0.05
	// Sequential is the always-valid 95% interval of the difference: it may be looked
	// at every day and acted on at the first look that excludes 0. SequentialRelative
	// is the same divided by the control's CVR.
	Sequential            *Interval `json:"sequential"`
	SequentialRelative    *Interval `json:"sequential_relative"`
	SequentialSignificant bool      `json:"sequential_significant"`
}

// SRM is the sample-ratio-mismatch check: visitors per variant against the planned
// split, Pearson's chi-square.
type SRM struct {
	ChiSquare float64 `json:"chi_square"`
	DF        int     `json:"df"`
	PValue    float64 `json:"p_value"`
	Threshold float64 `json:"threshold"`
	Mismatch  bool    `json:"mismatch"`
}

// Experiment answers the variant-lift query.
func (q *Queries) Experiment(ctx context.Context, eq ExperimentQuery) (*ExperimentReport, error) {
	if eq.ID == "" {
		return nil, fmt.Errorf("%w: no experiment named", ErrQuery)
	}
	if !eq.To.IsZero() && !eq.From.Before(eq.To) {
		return nil, fmt.Errorf("%w: from %s is not before to %s", ErrQuery, eq.From.Format(time.RFC3339), eq.To.Format(time.RFC3339))
	}
	for v, w := range eq.Weights {
		if !(w > 0) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("%w: weight of variant %q is %v: weights must be positive", ErrQuery, v, w)
		}
	}
	control, named := eq.Control, eq.Control != ""
	if !named {
		control = "control"
	}
	f := sink.ExperimentFilter{Site: eq.Site, Experiment: eq.ID, FromMs: 0, ToMs: math.MaxInt64}
	if !eq.From.IsZero() {
		f.FromMs = eq.From.UnixMilli()
	}
	if !eq.To.IsZero() {
		f.ToMs = eq.To.UnixMilli()
	}
	counts, err := q.r.VariantCounts(ctx, f)
	if err != nil {
		return nil, err
	}
	rep := &ExperimentReport{Experiment: eq.ID, Site: eq.Site, From: msTime(f.FromMs), To: msTime(f.ToMs),
		Control: control, Confidence: 0.95, EnoughData: true, Warnings: []string{}}
	// Variants with a planned weight but no visitors are part of the split.
	seen := map[string]bool{}
	for _, c := range counts {
		seen[c.Variant] = true
	}
	for v := range eq.Weights {
		if !seen[v] {
			counts = append(counts, sink.VariantCount{Variant: v})
		}
	}
	// The control first, then the others by name.
	sort.Slice(counts, func(i, j int) bool {
		if a, b := counts[i].Variant == control, counts[j].Variant == control; a != b {
			return a
		}
		return counts[i].Variant < counts[j].Variant
	})
	if len(counts) == 0 {
		rep.EnoughData = false
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("no visitors exposed to experiment %q in this range", eq.ID))
		rep.Variants = []Variant{}
		return rep, nil
	}
	var ctl *sink.VariantCount
	for i := range counts {
		rep.Visitors += counts[i].Visitors
		rep.Converted += counts[i].Converted
		if counts[i].Variant == control {
			ctl = &counts[i]
		}
	}
	if ctl == nil {
		if named {
			return nil, fmt.Errorf("%w: experiment %q has no variant %q to compare with", ErrQuery, eq.ID, control)
		}
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("no variant is named %q: name the control to see lifts", control))
	}
	weights := make([]float64, len(counts))
	observed := make([]int64, len(counts))
	var wsum float64
	for i, c := range counts {
		w := 1.0
		if eq.Weights != nil {
			var ok bool
			if w, ok = eq.Weights[c.Variant]; !ok {
				return nil, fmt.Errorf("%w: variant %q has visitors but no planned weight", ErrQuery, c.Variant)
			}
		}
		weights[i], observed[i] = w, c.Visitors
		wsum += w
	}
	tau2 := q.o.MixingSD * q.o.MixingSD
	for i, c := range counts {
		v := Variant{Name: c.Variant, Control: ctl != nil && c.Variant == control, Visitors: c.Visitors,
			Converted: c.Converted, CVR: rate(c.Converted, c.Visitors), CI: Wilson(c.Converted, c.Visitors, Z95),
			ExpectedShare: weights[i] / wsum, ObservedShare: rate(c.Visitors, rep.Visitors)}
		if ctl != nil && !v.Control {
			v.Lift = lift(c, *ctl, tau2)
		}
		if c.Visitors < q.o.MinVisitors {
			rep.EnoughData = false
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("variant %q has %s: wait for at least %d per variant before reading the result",
				c.Variant, plural(c.Visitors, "visitor"), q.o.MinVisitors))
		} else if c.Converted < q.o.MinConversions || c.Visitors-c.Converted < q.o.MinConversions {
			rep.EnoughData = false
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("variant %q has %s in %s: the intervals and p-values need at least %d conversions and %d non-conversions",
				c.Variant, plural(c.Converted, "conversion"), plural(c.Visitors, "visitor"), q.o.MinConversions, q.o.MinConversions))
		}
		rep.Variants = append(rep.Variants, v)
	}
	if chi2, df, p, ok := ChiSquareTest(observed, weights); ok {
		rep.SRM = &SRM{ChiSquare: chi2, DF: df, PValue: p, Threshold: q.o.SRMThreshold, Mismatch: p < q.o.SRMThreshold}
		if rep.SRM.Mismatch {
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("sample ratio mismatch (p = %.2g): visitors are not split as planned, so the assignment or the tracking is broken; do not trust the lift", p))
		}
	}
	return rep, nil
}

func lift(t, c sink.VariantCount, tau2 float64) *Lift {
	l := &Lift{Difference: rate(t.Converted, t.Visitors) - rate(c.Converted, c.Visitors)}
	if rel, ci, ok := LiftInterval(t.Converted, t.Visitors, c.Converted, c.Visitors, Z95); ok {
		l.Relative, l.CI = &rel, &ci
	}
	if z, p, ok := ZTest(t.Converted, t.Visitors, c.Converted, c.Visitors); ok {
		l.Z, l.PValue = &z, &p
		l.Significant = p < 0.05
	}
	if ci, ok := SequentialInterval(t.Converted, t.Visitors, c.Converted, c.Visitors, 0.05, tau2); ok {
		l.Sequential = &ci
		l.SequentialSignificant = !ci.Contains(0)
		if pc := rate(c.Converted, c.Visitors); pc > 0 {
			l.SequentialRelative = &Interval{ci.Low / pc, ci.High / pc}
		}
	}
	return l
}

// Experiments lists the experiments with exposures.
func (q *Queries) Experiments(ctx context.Context, site string) ([]sink.ExperimentInfo, error) {
	return q.r.Experiments(ctx, site)
}

// plural writes a count with its noun: "1 visitor", "2 visitors".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}

func rate(x, n int64) float64 {
	if n <= 0 {
		return 0
	}
	return float64(x) / float64(n)
}

func msTime(ms int64) time.Time {
	if ms == 0 || ms == math.MaxInt64 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ParseTime reads a time given to a query: RFC 3339, a date (2006-01-02, UTC), a date
// and minute (2006-01-02T15:04, UTC), Unix seconds or milliseconds, or a duration before
// now ("-7d", "-36h", "now"). "" is the zero time (the default).
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return time.Time{}, nil
	case s == "now":
		return now, nil
	case strings.HasPrefix(s, "-"):
		if d, ok := strings.CutSuffix(s[1:], "d"); ok {
			n, err := strconv.Atoi(d)
			if err != nil || n < 0 {
				return time.Time{}, fmt.Errorf("%w: time %q: want -<days>d", ErrQuery, s)
			}
			return now.AddDate(0, 0, -n), nil
		}
		d, err := time.ParseDuration(s[1:])
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: time %q: %v", ErrQuery, s, err)
		}
		return now.Add(-d), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > 1e11 { // milliseconds from 1973 on
			return time.UnixMilli(n).UTC(), nil
		}
		return time.Unix(n, 0).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%w: time %q: want RFC 3339 (2006-01-02T15:04:05Z), a date (2006-01-02), Unix seconds or ms, or -7d / -24h", ErrQuery, s)
}

// ParseWeights reads a planned split, "control:1,b:1" (or "control=50,b=50").
func ParseWeights(s string) (map[string]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(part, ":")
		if !ok {
			name, w, ok = strings.Cut(part, "=")
		}
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: weights %q: want variant:weight,variant:weight", ErrQuery, s)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(w), 64)
		if err != nil || !(f > 0) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%w: weight of %q is %q: want a positive number", ErrQuery, name, w)
		}
		out[name] = f
	}
	return out, nil
}
