package bench

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// MaxJourney bounds the signals of one visitor; the model never makes more (asserted by
// the tests), so a visitor's signals fit one bit mask each.
const MaxJourney = 64

// Goal is the event name the model converts with: rung's default goal.
const Goal = "form_submitted"

// Model is the simulated traffic: visitors who arrive on a landing page from a mix of
// campaigns, read a few pages with think times between them, click calls to action,
// come back for further sessions after 30 minutes or more, are exposed to an experiment
// whose variants convert at set true rates, and convert by submitting the signup form.
// Everything a visitor does is a pure function of (Seed, visitor number), so the signals,
// their event_ids, and the ground truth (who converts, in which variant) are known in
// advance, whatever the load generator does with them.
type Model struct {
	Seed uint64
	// Run tags every id (anonymous_id, event_id), so two runs against one server never
	// share a visitor or an event: 4 to 16 lower-case letters and digits.
	Run string
	// Site is the site every signal is for.
	Site       string
	Experiment Experiment
	// BaseCVR is the conversion rate of visitors outside the experiment.
	BaseCVR float64
	// ReturnRate is the chance, after each session, that the visitor comes back for
	// another (at most MaxSessions) after 30 minutes or more of simulated time.
	ReturnRate float64
	// ThinkMean is the mean simulated time between two pages of a session.
	ThinkMean time.Duration
}

// Experiment is an A/B test: Share of visitors are exposed on their first pageview, each
// to a variant drawn by weight; Variants[0] is the control.
type Experiment struct {
	Name     string
	Share    float64
	Variants []Variant
}

// Variant is one arm of the experiment with its true conversion rate: the probability
// that an exposed visitor converts (once, at some session after the exposure).
type Variant struct {
	Name   string
	Weight float64
	CVR    float64
}

// MaxSessions bounds a visitor's sessions.
const MaxSessions = 4

// DefaultModel is the workload `rung bench` runs unless told otherwise: an experiment
// on 80% of visitors, control converting at 5% and the treatment at 6% (a true lift of
// +20%), 4% outside it, one visitor in four coming back.
func DefaultModel(seed uint64, run string) Model {
	return Model{
		Seed: seed,
		Run:  run,
		Site: "bench-" + run + ".example",
		Experiment: Experiment{Name: "signup_cta", Share: 0.8, Variants: []Variant{
			{Name: "control", Weight: 1, CVR: 0.05},
			{Name: "bold_cta", Weight: 1, CVR: 0.06},
		}},
		BaseCVR:    0.04,
		ReturnRate: 0.25,
		ThinkMean:  25 * time.Second,
	}
}

// Validate reports every setting that cannot work.
func (m *Model) Validate() error {
	var errs []error
	if len(m.Run) < 4 || len(m.Run) > 16 || strings.Trim(m.Run, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		errs = append(errs, fmt.Errorf("run tag %q: want 4 to 16 lower-case letters and digits", m.Run))
	}
	if m.Site == "" || len(m.Site) > 100 || strings.Trim(m.Site, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:") != "" {
		errs = append(errs, fmt.Errorf("site %q: want 1 to 100 letters, digits, dots, hyphens, underscores or colons", m.Site))
	}
	rate := func(name string, p float64) {
		if !(p >= 0 && p <= 1) {
			errs = append(errs, fmt.Errorf("%s %v: want a probability from 0 to 1", name, p))
		}
	}
	rate("base conversion rate", m.BaseCVR)
	rate("return rate", m.ReturnRate)
	rate("experiment share", m.Experiment.Share)
	if m.ThinkMean <= 0 {
		errs = append(errs, fmt.Errorf("think time %v: must be positive", m.ThinkMean))
	}
	e := &m.Experiment
	if !validName(e.Name) {
		errs = append(errs, fmt.Errorf("experiment name %q: want 1 to 100 letters, digits and _ . : -", e.Name))
	}
	if len(e.Variants) < 2 {
		errs = append(errs, fmt.Errorf("experiment %q: want at least two variants (the first is the control)", e.Name))
	}
	seen := map[string]bool{}
	for _, v := range e.Variants {
		if !validName(v.Name) || seen[v.Name] {
			errs = append(errs, fmt.Errorf("variant %q: want a unique name of letters, digits and _ . : -", v.Name))
		}
		seen[v.Name] = true
		if !(v.Weight > 0) || math.IsInf(v.Weight, 0) {
			errs = append(errs, fmt.Errorf("variant %q: weight %v must be positive", v.Name, v.Weight))
		}
		rate("variant "+v.Name+" conversion rate", v.CVR)
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	return s != "" && len(s) <= 100 &&
		strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-") == ""
}

// ParseVariants reads "control:1:0.05,b:1:0.06" (name:weight:cvr, the control first).
func ParseVariants(s string) ([]Variant, error) {
	var out []Variant
	for _, part := range strings.Split(s, ",") {
		f := strings.Split(strings.TrimSpace(part), ":")
		if len(f) != 3 {
			return nil, fmt.Errorf("variant %q: want name:weight:cvr", part)
		}
		w, err1 := strconv.ParseFloat(f[1], 64)
		p, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("variant %q: weight and cvr must be numbers", part)
		}
		out = append(out, Variant{Name: f[0], Weight: w, CVR: p})
	}
	return out, nil
}

// The site the visitors browse. Landing pages are drawn by weight; later pages of a
// session uniformly from the content pages. The signup form is reached by converters
// in their converting session, and by some others who leave it unsent.
type landing struct {
	path   string
	weight float64
}

var landings = []landing{
	{"/", 30}, {"/pricing", 20}, {"/features", 12}, {"/blog/launch-week", 14},
	{"/blog/scaling-ingest", 10}, {"/docs/quickstart", 9}, {"/customers", 5},
}

// SignupPath is the page of the form whose submission is the conversion.
const SignupPath = "/signup"

// Pages lists every path the model visits: the landing pages, then the signup form.
func Pages() []string {
	out := make([]string, 0, len(landings)+1)
	for _, l := range landings {
		out = append(out, l.path)
	}
	return append(out, SignupPath)
}

// Campaigns: where a session comes from. The utm values travel in the landing URL's
// query, as they do from an ad, and rung parses them from there.
type campaign struct {
	source, medium, campaign, referrer string
	weight                             float64
}

var campaigns = []campaign{
	{"", "", "", "", 30},
	{"", "", "", "https://www.google.com/", 25},
	{"google", "cpc", "spring_sale", "https://www.google.com/", 20},
	{"newsletter", "email", "weekly_digest", "", 12},
	{"twitter", "social", "launch", "https://t.co/", 8},
	{"partner", "referral", "integrations", "https://partner.example/", 5},
}

// Signal is one signal of a visitor's journey, before it is encoded.
type Signal struct {
	Visitor  int64
	Seq      int   // position in the visitor's journey, from 0
	Session  int   // the simulated session it belongs to, from 0
	AtMs     int64 // simulated time since the visitor's first signal
	Type     string
	Page     int // index in Pages(): the page shown or the page the event happened on
	Campaign int // index of the session's campaign; only landing pageviews carry its utm
	Landing  bool
	Name     string // event name
	Variant  int    // exposure: index in Experiment.Variants
}

// Journey is everything one visitor does, and what the model decided for them.
type Journey struct {
	Visitor  int64
	Variant  int // -1: not in the experiment
	Converts bool
	Sessions int
	Signals  []Signal
}

func weighted[T any](r *rand.Rand, items []T, weight func(T) float64) int {
	var total float64
	for _, it := range items {
		total += weight(it)
	}
	x := r.Float64() * total
	for i, it := range items {
		if x -= weight(it); x < 0 {
			return i
		}
	}
	return len(items) - 1
}

// Journey returns visitor v's signals, in order. It depends on nothing but m and v.
func (m *Model) Journey(v int64) Journey {
	src := rand.NewPCG(0, 0)
	return m.journey(v, nil, src, rand.New(src))
}

// journey is Journey appending the signals to buf, drawing from r, whose source src
// it seeds for v.
func (m *Model) journey(v int64, buf []Signal, src *rand.PCG, r *rand.Rand) Journey {
	src.Seed(m.Seed, uint64(v))
	j := Journey{Visitor: v, Variant: -1, Sessions: 1, Signals: buf[:0]}
	for j.Sessions < MaxSessions && r.Float64() < m.ReturnRate {
		j.Sessions++
	}
	p := m.BaseCVR
	if r.Float64() < m.Experiment.Share {
		j.Variant = weighted(r, m.Experiment.Variants, func(v Variant) float64 { return v.Weight })
		p = m.Experiment.Variants[j.Variant].CVR
	}
	j.Converts = r.Float64() < p
	convSession := r.IntN(j.Sessions)
	think := func() int64 { return int64(r.ExpFloat64() * float64(m.ThinkMean.Milliseconds())) }
	signup := len(landings)

	var t int64
	add := func(g Signal) {
		g.Visitor, g.Seq, g.AtMs = v, len(j.Signals), t
		j.Signals = append(j.Signals, g)
	}
	for s := 0; s < j.Sessions; s++ {
		if s > 0 {
			t += 30*60_000 + int64(r.ExpFloat64()*6*3600_000)
		}
		camp := weighted(r, campaigns, func(c campaign) float64 { return c.weight })
		land := weighted(r, landings, func(l landing) float64 { return l.weight })
		add(Signal{Session: s, Type: "pageview", Page: land, Campaign: camp, Landing: true})
		if s == 0 && j.Variant >= 0 {
			t += 150
			add(Signal{Session: s, Type: "exposure", Page: land, Variant: j.Variant})
		}
		page := land
		for n := 1 + geometric(r, 0.55, 5); n > 1; n-- {
			if r.Float64() < 0.1 {
				t += 2000 + think()/4
				add(Signal{Session: s, Type: "event", Page: page, Name: "cta_click"})
			}
			t += think()
			page = r.IntN(len(landings))
			add(Signal{Session: s, Type: "pageview", Page: page})
		}
		switch {
		case j.Converts && s == convSession:
			t += think()
			add(Signal{Session: s, Type: "pageview", Page: signup})
			t += 5000 + think()
			add(Signal{Session: s, Type: "event", Page: signup, Name: Goal})
		case r.Float64() < 0.08:
			t += think()
			add(Signal{Session: s, Type: "pageview", Page: signup})
		}
	}
	return j
}

// geometric counts successes before the first failure, at most limit.
func geometric(r *rand.Rand, p float64, limit int) int {
	n := 0
	for n < limit && r.Float64() < p {
		n++
	}
	return n
}

// AnonymousID is visitor v's anonymous_id.
func (m *Model) AnonymousID(v int64) string {
	return m.Run + "-v" + pad36(v, 6)
}

// EventID is the event_id of visitor v's signal number seq.
func (m *Model) EventID(v int64, seq int) string {
	return m.Run + "-v" + pad36(v, 6) + "-" + pad36(int64(seq), 2)
}

func pad36(v int64, width int) string {
	s := strconv.FormatInt(v, 36)
	if len(s) < width {
		s = strings.Repeat("0", width-len(s)) + s
	}
	return s
}

// ParseEventID is the inverse of EventID; ok is false for an id this model did not make.
func (m *Model) ParseEventID(id string) (v int64, seq int, ok bool) {
	rest, found := strings.CutPrefix(id, m.Run+"-v")
	if !found {
		return 0, 0, false
	}
	vs, ss, found := strings.Cut(rest, "-")
	if !found || len(vs) < 6 || len(ss) != 2 {
		return 0, 0, false
	}
	v, err1 := strconv.ParseInt(vs, 36, 64)
	s, err2 := strconv.ParseInt(ss, 36, 64)
	if err1 != nil || err2 != nil || v < 0 || s < 0 || s >= MaxJourney || pad36(v, 6) != vs {
		return 0, 0, false
	}
	return v, int(s), true
}

// AppendJSON appends g encoded as t.js sends it.
func (m *Model) AppendJSON(dst []byte, g *Signal) []byte {
	return m.appendJSON(dst, g, m.appendAnonymousID(nil, g.Visitor))
}

func (m *Model) appendAnonymousID(dst []byte, v int64) []byte {
	dst = append(dst, m.Run...)
	dst = append(dst, "-v"...)
	return appendPad36(dst, v, 6)
}

// appendJSON is AppendJSON with the visitor's anonymous_id made already.
func (m *Model) appendJSON(dst []byte, g *Signal, anon []byte) []byte {
	dst = append(dst, `{"type":"`...)
	dst = append(dst, g.Type...)
	dst = append(dst, `","site":`...)
	dst = appendString(dst, m.Site)
	dst = append(dst, `,"anonymous_id":"`...)
	dst = append(dst, anon...)
	dst = append(dst, `","event_id":"`...)
	dst = append(dst, anon...)
	dst = append(dst, '-')
	dst = appendPad36(dst, int64(g.Seq), 2)
	dst = append(dst, `","url":"https://`...)
	dst = append(dst, m.Site...)
	path := SignupPath
	if g.Page < len(landings) {
		path = landings[g.Page].path
	}
	dst = append(dst, path...)
	c := &campaigns[g.Campaign]
	if g.Landing && c.source != "" {
		dst = append(dst, "?utm_source="...)
		dst = append(dst, c.source...)
		dst = append(dst, "&utm_medium="...)
		dst = append(dst, c.medium...)
		dst = append(dst, "&utm_campaign="...)
		dst = append(dst, c.campaign...)
	}
	dst = append(dst, '"')
	if g.Landing && c.referrer != "" {
		dst = append(dst, `,"referrer":"`...)
		dst = append(dst, c.referrer...)
		dst = append(dst, '"')
	}
	switch g.Type {
	case "event":
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, g.Name)
		if g.Name == Goal {
			dst = append(dst, `,"props":{"form":"signup","plan":"pro"}`...)
		} else {
			dst = append(dst, `,"props":{"cta":"hero"}`...)
		}
	case "exposure":
		dst = append(dst, `,"experiment":`...)
		dst = appendString(dst, m.Experiment.Name)
		dst = append(dst, `,"variant":`...)
		dst = appendString(dst, m.Experiment.Variants[g.Variant].Name)
	}
	return append(dst, '}')
}

func appendPad36(dst []byte, v int64, width int) []byte {
	var b [16]byte
	s := strconv.AppendInt(b[:0], v, 36)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// appendString quotes s; names and sites are validated to need no escaping beyond this.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			dst = append(dst, '\\', c)
		} else {
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// Expectation is what the model implies for a population of visitors, before any
// signal is sent: the true rates and the sessions per visitor.
type Expectation struct {
	SessionsPerVisitor float64            `json:"sessions_per_visitor"`
	CVR                float64            `json:"cvr"` // of all visitors
	Control            string             `json:"control"`
	Variants           []VariantTruth     `json:"variants"`
	LandingShare       map[string]float64 `json:"landing_share"`
}

// VariantTruth is one variant's true rate and its true lift over the control.
type VariantTruth struct {
	Name  string  `json:"name"`
	Share float64 `json:"share"` // of exposed visitors
	CVR   float64 `json:"cvr"`
	Lift  float64 `json:"lift"` // CVR / control CVR - 1
}

// Expect returns the model's expectation.
func (m *Model) Expect() Expectation {
	e := Expectation{Control: m.Experiment.Variants[0].Name, LandingShare: map[string]float64{}}
	for k, p := 0, 1.0; k < MaxSessions; k++ {
		e.SessionsPerVisitor += p
		p *= m.ReturnRate
	}
	var wsum, cvr float64
	for _, v := range m.Experiment.Variants {
		wsum += v.Weight
	}
	c0 := m.Experiment.Variants[0].CVR
	for _, v := range m.Experiment.Variants {
		lift := math.NaN()
		if c0 > 0 {
			lift = v.CVR/c0 - 1
		}
		e.Variants = append(e.Variants, VariantTruth{Name: v.Name, Share: v.Weight / wsum, CVR: v.CVR, Lift: lift})
		cvr += v.Weight / wsum * v.CVR
	}
	e.CVR = m.Experiment.Share*cvr + (1-m.Experiment.Share)*m.BaseCVR
	var lw float64
	for _, l := range landings {
		lw += l.weight
	}
	for _, l := range landings {
		e.LandingShare[l.path] = l.weight / lw
	}
	return e
}
