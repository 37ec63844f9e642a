package preagg

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

const (
	second  = int64(1000)
	minute  = 60 * second
	hour    = 60 * minute
	timeout = 30 * minute
)

// traffic is generated signals and their ground truth. The signals are delivered in
// `at` order, which differs from received_at for late signals (received before the
// visitor's previous signal, delivered after it); the truth is what the reference
// model (model, below) makes of the deliveries.
type traffic struct {
	r        *rand.Rand
	base     int64
	seq      int
	deliver  []delivery
	sessions map[string]*sink.Session  // site/anon/start
	firsts   map[string]*sink.Exposure // site/experiment/anon
	goals    map[string][]int64        // site/anon: effective times of goal events
	counts   struct{ dups, late, bots, ties, exactGaps, restarts int }
}

type delivery struct {
	at  int64
	seq int
	g   schemas.Signal
}

var (
	paths   = []string{"/", "/pricing", "/blog/rung", "/signup", `/<script>alert("x")</script>`, "/docs?"}
	sources = []string{"", "google", "news", `"><img src=x>`}
	mediums = []string{"", "cpc", "email"}
	camps   = []string{"", "spring", "launch"}
)

// siteExperiments: the experiment each site runs and its variants.
var siteExperiments = map[string]struct {
	exp      string
	variants []string
}{
	"a.example": {"hero", []string{"control", "b"}},
	"b.example": {"hero", []string{"control", "b"}},
	"c.example": {"pricing", []string{"control", "v1", "v2"}},
}

func newTraffic(seed uint64, base int64) *traffic {
	return &traffic{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b9)), base: base,
		sessions: map[string]*sink.Session{}, firsts: map[string]*sink.Exposure{}, goals: map[string][]int64{}}
}

// emit schedules g for delivery at `at`, giving it an event_id when it has none, and
// returns it as emitted.
func (tr *traffic) emit(at int64, g schemas.Signal) schemas.Signal {
	tr.seq++
	if g.EventID == "" {
		g.EventID = fmt.Sprintf("e-%07d", tr.seq)
	}
	tr.deliver = append(tr.deliver, delivery{at: at, seq: tr.seq, g: g})
	return g
}

// visitor scripts one visitor starting at start (ms from base).
func (tr *traffic) visitor(site, anon string, start int64) {
	r := tr.r
	ex := siteExperiments[site]
	variant := ex.variants[r.IntN(len(ex.variants))]
	t := tr.base + start
	prev := t
	for s, n := 0, 1+r.IntN(3); s < n; s++ {
		if s > 0 {
			gap := timeout + r.Int64N(2*hour)
			if r.IntN(5) == 0 {
				gap = timeout // exactly the timeout: a new session
				tr.counts.exactGaps++
			}
			t = prev + gap
		}
		for i, m := 0, 1+r.IntN(7); i < m; i++ {
			if i > 0 {
				gap := second + r.Int64N(10*minute)
				if r.IntN(10) == 0 {
					gap = timeout - 1 // one millisecond short: the same session
				}
				t = prev + gap
			}
			g := tr.emit(t, tr.signal(site, anon, ex.exp, variant, t, i == 0))
			prev = t
			switch k := r.IntN(100); {
			case k < 10: // a client retry of the same signal, up to 5 s later
				tr.emit(t+r.Int64N(5*second), g)
				tr.counts.dups++
			case k < 15 && g.Type == schemas.TypePageview: // two pageviews in one millisecond
				tr.emit(t, tr.pageview(site, anon, t))
				tr.counts.ties++
			case k < 22: // received before the previous signal, delivered after it
				h := tr.signal(site, anon, ex.exp, variant, t, false)
				h.ReceivedAt = t - second - r.Int64N(4*second)
				tr.emit(t+1, h)
				tr.counts.late++
			case k < 25: // a bot's pageview: stored, counted nowhere
				h := tr.pageview(site, anon, t+2)
				h.Bot = true
				tr.emit(t+2, h)
				tr.counts.bots++
			}
		}
	}
}

// signal makes a random signal of the visitor at time t.
func (tr *traffic) signal(site, anon, exp, variant string, t int64, first bool) schemas.Signal {
	r := tr.r
	g := schemas.Signal{Site: site, AnonymousID: anon, ReceivedAt: t}
	k := r.IntN(100)
	if first && k < 70 {
		k = 0
	}
	switch {
	case k < 55:
		return tr.pageview(site, anon, t)
	case k < 80:
		g.Type, g.Name = schemas.TypeEvent, "scroll"
		if r.IntN(2) == 0 {
			g.Name = DefaultGoal
		}
	default:
		g.Type, g.Experiment, g.Variant = schemas.TypeExposure, exp, variant
		if r.IntN(8) == 0 { // exposed again to another variant: the first one holds
			g.Variant = siteExperiments[site].variants[r.IntN(len(siteExperiments[site].variants))]
		}
	}
	return g
}

func (tr *traffic) pageview(site, anon string, t int64) schemas.Signal {
	r := tr.r
	path := paths[r.IntN(len(paths))]
	return schemas.Signal{Type: schemas.TypePageview, Site: site, AnonymousID: anon, ReceivedAt: t, Path: path,
		URL: "https://" + site + path, UTMSource: sources[r.IntN(len(sources))], UTMMedium: mediums[r.IntN(len(mediums))],
		UTMCampaign: camps[r.IntN(len(camps))]}
}

// model is the reference for the rules of package preagg, written from their statement
// and sharing no code with the sessionizer: each visitor's signals in delivery order,
// each placed at its event time, or 1 ms after the visitor's last counted signal when it
// is not later than that; a new session after a gap of at least the timeout; a copy of
// an event_id already in the session counts nowhere; a session lands on its first
// pageview and converts with a goal; a visitor's first exposure to an experiment is
// their first in that order, and they convert with a goal strictly after it. (No
// delivery here is late by more than the late window, so that clamp never applies.)
func (tr *traffic) model() {
	type state struct {
		last int64
		sess *sink.Session
		ids  map[string]bool
	}
	vis := map[string]*state{}
	for _, d := range tr.deliver {
		g := d.g
		if g.Bot {
			continue
		}
		k := g.Site + "/" + g.AnonymousID
		v := vis[k]
		placed := g.ReceivedAt
		if v != nil && placed <= v.last {
			placed = v.last + 1
		}
		if v == nil || placed-v.last >= timeout {
			if v == nil {
				v = &state{}
				vis[k] = v
			}
			v.sess = &sink.Session{Site: g.Site, AnonymousID: g.AnonymousID, StartMs: placed}
			v.ids = map[string]bool{}
			tr.sessions[fmt.Sprintf("%s/%d", k, placed)] = v.sess
		} else if v.ids[g.EventID] {
			continue
		}
		v.ids[g.EventID] = true
		v.last = placed
		switch s := v.sess; g.Type {
		case schemas.TypePageview:
			if s.LandingMs == 0 {
				s.LandingMs, s.LandingPath, s.UTMSource, s.UTMMedium, s.UTMCampaign = placed, g.Path, g.UTMSource, g.UTMMedium, g.UTMCampaign
			}
		case schemas.TypeEvent:
			if g.Name == DefaultGoal {
				s.Converted = true
				tr.goals[k] = append(tr.goals[k], placed)
			}
		case schemas.TypeExposure:
			e := g.Site + "/" + g.Experiment + "/" + g.AnonymousID
			if tr.firsts[e] == nil {
				tr.firsts[e] = &sink.Exposure{Site: g.Site, Experiment: g.Experiment, AnonymousID: g.AnonymousID, FirstMs: placed, Variant: g.Variant}
			}
		}
	}
}

// restartSpanner scripts a visitor whose session spans a restart at split: a pageview
// and a goal before it; after it, a copy of the goal (a duplicate only the restored
// event_ids can catch), a signal received before the restart but delivered after, and a
// pageview that continues the session.
func (tr *traffic) restartSpanner(site, anon string, split int64) {
	pv := schemas.Signal{Type: schemas.TypePageview, Site: site, AnonymousID: anon, ReceivedAt: split - 10*minute,
		Path: "/restart", URL: "https://" + site + "/restart", UTMSource: "news"}
	tr.emit(pv.ReceivedAt, pv)
	goal := schemas.Signal{Type: schemas.TypeEvent, Site: site, AnonymousID: anon, ReceivedAt: split - second,
		Name: DefaultGoal, EventID: "restart-goal-" + anon}
	tr.emit(goal.ReceivedAt, goal)
	dup := goal
	dup.ReceivedAt = split + second
	tr.emit(split+second, dup)
	tr.emit(split+2*second, schemas.Signal{Type: schemas.TypeEvent, Site: site, AnonymousID: anon,
		ReceivedAt: split - 5*second, Name: "scroll"})
	next := schemas.Signal{Type: schemas.TypePageview, Site: site, AnonymousID: anon, ReceivedAt: split + 20*minute,
		Path: "/after", URL: "https://" + site + "/after"}
	tr.emit(next.ReceivedAt, next)
	tr.counts.restarts++
}

// generate makes visitors across three sites over six hours, plus restart spanners.
func generate(seed uint64, base int64, visitors int, split int64) *traffic {
	tr := newTraffic(seed, base)
	sites := []string{"a.example", "b.example", "c.example"}
	for i := 0; i < visitors; i++ {
		tr.visitor(sites[i%len(sites)], fmt.Sprintf("visitor-%05d", i), tr.r.Int64N(6*hour))
	}
	for i, site := range sites {
		tr.restartSpanner(site, fmt.Sprintf("spanner-%d", i), split)
	}
	sort.SliceStable(tr.deliver, func(i, j int) bool {
		a, b := &tr.deliver[i], &tr.deliver[j]
		if a.at != b.at {
			return a.at < b.at
		}
		return a.seq < b.seq
	})
	tr.model()
	return tr
}

// truth returns the rollups of [from, to) as the generator scripted them.
func (tr *traffic) truth(from, to int64) *sink.Rollups {
	r := &sink.Rollups{}
	hours := map[sink.LandingKey]*sink.LandingHour{}
	for _, s := range tr.sessions {
		if s.StartMs >= from && s.StartMs < to {
			r.Sessions = append(r.Sessions, *s)
		}
		if h := sink.HourMs(s.StartMs); h >= sink.HourMs(from) && h < to {
			k := sink.LandingKey{Site: s.Site, HourMs: h, LandingPath: s.LandingPath, UTMSource: s.UTMSource,
				UTMMedium: s.UTMMedium, UTMCampaign: s.UTMCampaign}
			if hours[k] == nil {
				hours[k] = &sink.LandingHour{LandingKey: k}
			}
			hours[k].Sessions++
			if s.Converted {
				hours[k].Converted++
			}
		}
	}
	for _, h := range hours {
		r.Landing = append(r.Landing, *h)
	}
	for _, e := range tr.firsts {
		if e.FirstMs < from || e.FirstMs >= to {
			continue
		}
		conv := false
		for _, g := range tr.goals[e.Site+"/"+e.AnonymousID] {
			conv = conv || g > e.FirstMs
		}
		r.Exposures = append(r.Exposures, sink.VisitorExposure{Exposure: *e, Converted: conv})
	}
	canonical(r)
	return r
}

// canonical sorts rollups the way the sinks return them.
func canonical(r *sink.Rollups) {
	sort.Slice(r.Sessions, func(i, j int) bool {
		a, b := &r.Sessions[i], &r.Sessions[j]
		if a.Site != b.Site {
			return a.Site < b.Site
		}
		if a.AnonymousID != b.AnonymousID {
			return a.AnonymousID < b.AnonymousID
		}
		return a.StartMs < b.StartMs
	})
	sort.Slice(r.Landing, func(i, j int) bool {
		a, b := r.Landing[i].LandingKey, r.Landing[j].LandingKey
		return fmt.Sprintf("%s\x00%020d\x00%s\x00%s\x00%s\x00%s", a.Site, a.HourMs, a.LandingPath, a.UTMSource, a.UTMMedium, a.UTMCampaign) <
			fmt.Sprintf("%s\x00%020d\x00%s\x00%s\x00%s\x00%s", b.Site, b.HourMs, b.LandingPath, b.UTMSource, b.UTMMedium, b.UTMCampaign)
	})
	sort.Slice(r.Exposures, func(i, j int) bool {
		a, b := &r.Exposures[i], &r.Exposures[j]
		if a.Site != b.Site {
			return a.Site < b.Site
		}
		if a.Experiment != b.Experiment {
			return a.Experiment < b.Experiment
		}
		return a.AnonymousID < b.AnonymousID
	})
}

// landingTruth is the landing-page answer for a site (all sites for ""), by path.
func (tr *traffic) landingTruth(site string, from, to int64) map[string][2]int64 {
	out := map[string][2]int64{}
	for _, s := range tr.sessions {
		if (site == "" || s.Site == site) && s.StartMs >= from && s.StartMs < to {
			c := out[s.LandingPath]
			c[0]++
			if s.Converted {
				c[1]++
			}
			out[s.LandingPath] = c
		}
	}
	return out
}

// variantTruth is the experiment answer, by variant: visitors and converted visitors.
func (tr *traffic) variantTruth(exp string) map[string][2]int64 {
	out := map[string][2]int64{}
	for _, e := range tr.truth(0, 1<<62).Exposures {
		if e.Experiment != exp {
			continue
		}
		c := out[e.Variant]
		c[0]++
		if e.Converted {
			c[1]++
		}
		out[e.Variant] = c
	}
	return out
}

var testBase = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
