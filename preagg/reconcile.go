package preagg

import (
	"context"
	"fmt"
	"time"

	"github.com/rungdev/rung/sink"
)

// Auditor reads a range's rollups twice: as pre-rolled, and recomputed from the raw
// signals by SQL; both sinks are one.
type Auditor interface {
	PreRolled(ctx context.Context, fromMs, toMs int64, rules sink.Rules) (*sink.Rollups, error)
	Recompute(ctx context.Context, fromMs, toMs int64, rules sink.Rules) (*sink.Rollups, error)
}

// Mismatch is one rollup row on which the pre-rolled numbers and the recomputation
// disagree. A side that has no such row is "(none)".
type Mismatch struct {
	Kind       string `json:"kind"` // session, landing_hour or exposure
	Key        string `json:"key"`
	PreRolled  string `json:"pre_rolled"`
	Recomputed string `json:"recomputed"`
}

func (m Mismatch) String() string {
	return fmt.Sprintf("%s %s: pre-rolled %s, recomputed %s", m.Kind, m.Key, m.PreRolled, m.Recomputed)
}

// Audit is what reconcile compared and what differed.
type Audit struct {
	From         time.Time  `json:"from"`
	To           time.Time  `json:"to"`
	Sessions     int        `json:"sessions"`      // recomputed sessions compared
	LandingHours int        `json:"landing_hours"` // recomputed landing hours compared
	Exposures    int        `json:"exposures"`     // recomputed first exposures compared
	Mismatches   []Mismatch `json:"mismatches"`
}

// Reconcile recomputes every rollup of [from, to) from the raw signals under rules and
// compares it, row by row, with what the pre-aggregator wrote: each session that started
// in the range (where the sessionizer cut it, its landing page, utm, converted), each
// landing hour (sessions, converting sessions; the range widened to whole hours), and
// each visitor first exposed in the range (variant, time, converted). The variant and landing-page totals are sums of
// these rows, so they agree when the rows do.
func Reconcile(ctx context.Context, a Auditor, from, to time.Time, rules sink.Rules) (*Audit, error) {
	if !from.Before(to) {
		return nil, fmt.Errorf("%w: from %s is not before to %s", ErrRange, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	f, t := from.UnixMilli(), to.UnixMilli()
	pre, err := a.PreRolled(ctx, f, t, rules)
	if err != nil {
		return nil, fmt.Errorf("read the pre-rolled numbers: %w", err)
	}
	re, err := a.Recompute(ctx, f, t, rules)
	if err != nil {
		return nil, fmt.Errorf("recompute from raw signals: %w", err)
	}
	au := &Audit{From: from.UTC(), To: to.UTC(), Sessions: len(re.Sessions), LandingHours: len(re.Landing),
		Exposures: len(re.Exposures), Mismatches: []Mismatch{}}
	diff(&au.Mismatches, "session", pre.Sessions, re.Sessions,
		func(s sink.Session) string { return fmt.Sprintf("%s/%s@%s", s.Site, s.AnonymousID, ms(s.StartMs)) },
		func(s sink.Session) string {
			if s.LandingMs == 0 {
				return fmt.Sprintf("{no pageview, converted=%v}", s.Converted)
			}
			return fmt.Sprintf("{landing %q at %s, utm %q/%q/%q, converted=%v}", s.LandingPath, ms(s.LandingMs),
				s.UTMSource, s.UTMMedium, s.UTMCampaign, s.Converted)
		})
	diff(&au.Mismatches, "landing_hour", pre.Landing, re.Landing,
		func(l sink.LandingHour) string {
			return fmt.Sprintf("%s %s %q utm %q/%q/%q", l.Site, ms(l.HourMs), l.LandingPath, l.UTMSource, l.UTMMedium, l.UTMCampaign)
		},
		func(l sink.LandingHour) string {
			return fmt.Sprintf("{sessions %d, converted %d}", l.Sessions, l.Converted)
		})
	diff(&au.Mismatches, "exposure", pre.Exposures, re.Exposures,
		func(e sink.VisitorExposure) string {
			return fmt.Sprintf("%s/%s/%s", e.Site, e.Experiment, e.AnonymousID)
		},
		func(e sink.VisitorExposure) string {
			return fmt.Sprintf("{variant %q at %s, converted=%v}", e.Variant, ms(e.FirstMs), e.Converted)
		})
	return au, nil
}

// diff appends a mismatch for every key whose value differs, or that one side lacks.
func diff[T any](out *[]Mismatch, kind string, pre, re []T, key, val func(T) string) {
	pv := make(map[string]string, len(pre))
	var order []string
	for _, p := range pre {
		k := key(p)
		pv[k] = val(p)
		order = append(order, k)
	}
	seen := make(map[string]bool, len(re))
	for _, r := range re {
		k := key(r)
		seen[k] = true
		rv := val(r)
		if p, ok := pv[k]; !ok {
			*out = append(*out, Mismatch{Kind: kind, Key: k, PreRolled: "(none)", Recomputed: rv})
		} else if p != rv {
			*out = append(*out, Mismatch{Kind: kind, Key: k, PreRolled: p, Recomputed: rv})
		}
	}
	for _, k := range order {
		if !seen[k] {
			*out = append(*out, Mismatch{Kind: kind, Key: k, PreRolled: pv[k], Recomputed: "(none)"})
		}
	}
}

func ms(v int64) string { return time.UnixMilli(v).UTC().Format("2006-01-02T15:04:05.000Z") }
