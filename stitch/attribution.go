package stitch

import (
	"context"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/rungdev/rung/schemas"
)

// Signals is the slice of the telemetry sink that attribution needs; sink/sqlite and
// sink/clickhouse implement it. VisitorSignals returns every signal of one visitor in
// received_at order (none, and no error, for a visitor never seen). It is called
// concurrently; the returned slice belongs to the caller.
type Signals interface {
	VisitorSignals(ctx context.Context, anonymousID string) ([]schemas.Signal, error)
}

// Touch is one attributed visit: the utm values and referrer a pageview arrived with.
type Touch struct {
	Source      string    `json:"source,omitempty"`
	Medium      string    `json:"medium,omitempty"`
	Campaign    string    `json:"campaign,omitempty"`
	Term        string    `json:"term,omitempty"`
	Content     string    `json:"content,omitempty"`
	Referrer    string    `json:"referrer,omitempty"`
	LandingPage string    `json:"landing_page,omitempty"` // the pageview's path
	At          time.Time `json:"at,omitzero"`
}

// Attribution is what the sink knows of a visitor. The zero value (with only AnonymousID
// set) is the attribution of a visitor never seen: empty, not an error.
type Attribution struct {
	AnonymousID string `json:"anonymous_id"`
	Site        string `json:"site,omitempty"`
	// FirstTouch is the first pageview; LastTouch the last pageview that came with a utm
	// value or an external referrer (a campaign or a referral, not an internal click or a
	// direct visit), else the first.
	FirstTouch  Touch             `json:"first_touch,omitzero"`
	LastTouch   Touch             `json:"last_touch,omitzero"`
	LandingPage string            `json:"landing_page,omitempty"` // path of the first pageview
	FirstSeen   time.Time         `json:"first_seen_at,omitzero"` // the first signal of any type
	Variants    map[string]string `json:"variants,omitempty"`     // experiment → variant first exposed
}

// Known reports whether the sink had any signal of the visitor.
func (a *Attribution) Known() bool { return !a.FirstSeen.IsZero() }

// maxVariants is lead_created's limit on experiments; past it, the earliest exposures win.
const maxVariants = 50

// Attribute computes a visitor's attribution from their signals. It is pure: signals
// need not be sorted (they are read in received_at order, stably), and are not modified.
func Attribute(anonymousID string, signals []schemas.Signal) Attribution {
	a := Attribution{AnonymousID: anonymousID}
	if len(signals) == 0 {
		return a
	}
	order := make([]int, len(signals))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return signals[order[i]].ReceivedAt < signals[order[j]].ReceivedAt })

	first := &signals[order[0]]
	a.Site, a.FirstSeen = first.Site, time.UnixMilli(first.ReceivedAt).UTC()
	var firstPV, lastTouch *schemas.Signal
	for _, i := range order {
		s := &signals[i]
		switch s.Type {
		case schemas.TypePageview:
			if firstPV == nil {
				firstPV = s
			}
			if hasUTM(s) || externalReferrer(s) {
				lastTouch = s
			}
		case schemas.TypeExposure:
			if s.Experiment == "" {
				continue
			}
			if _, seen := a.Variants[s.Experiment]; seen || len(a.Variants) >= maxVariants {
				continue
			}
			if a.Variants == nil {
				a.Variants = map[string]string{}
			}
			a.Variants[s.Experiment] = s.Variant
		}
	}
	if firstPV == nil {
		return a
	}
	if lastTouch == nil {
		lastTouch = firstPV
	}
	a.FirstTouch, a.LastTouch, a.LandingPage = touch(firstPV), touch(lastTouch), firstPV.Path
	return a
}

func touch(s *schemas.Signal) Touch {
	return Touch{Source: s.UTMSource, Medium: s.UTMMedium, Campaign: s.UTMCampaign, Term: s.UTMTerm,
		Content: s.UTMContent, Referrer: s.Referrer, LandingPage: s.Path, At: time.UnixMilli(s.ReceivedAt).UTC()}
}

func hasUTM(s *schemas.Signal) bool {
	return s.UTMSource != "" || s.UTMMedium != "" || s.UTMCampaign != "" || s.UTMTerm != "" || s.UTMContent != ""
}

// externalReferrer: the referrer is another site than the page's own (www. aside).
func externalReferrer(s *schemas.Signal) bool {
	if s.Referrer == "" {
		return false
	}
	ref := host(s.Referrer)
	return ref != "" && ref != host(s.URL)
}

func host(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(strings.ToLower(u.Hostname()), "www.")
}
