package dashboard

import (
	"bytes"
	"errors"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rungdev/rung/preagg/stats"
)

// Geometry of the inline charts, in SVG user units.
const (
	barWidth    = 220.0
	forestWidth = 360.0
)

var funcs = template.FuncMap{
	"pct":      pct,
	"spct":     signedPct,
	"num":      num,
	"pvalue":   pvalue,
	"peq":      peq,
	"day":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"deref":    func(p *float64) float64 { return *p },
	"subtract": func(a, b float64) float64 { return a - b },
	"add":      func(a, b float64) float64 { return a + b },
	"plural":   plural,
	"int64":    func(n int) int64 { return int64(n) },
}

// pct formats a rate as a percentage: one decimal, two below 1%.
func pct(v float64) string {
	if v != 0 && math.Abs(v) < 0.01 {
		return strconv.FormatFloat(v*100, 'f', 2, 64) + "%"
	}
	return strconv.FormatFloat(v*100, 'f', 1, 64) + "%"
}

// axisPct labels an axis tick to three significant digits, without needless decimals:
// a fixed number of decimals would write the ticks of a tiny rate's axis all alike.
func axisPct(v float64) string {
	if math.Abs(v) < 1e-9 {
		return "0%"
	}
	x := v * 100
	scale := math.Pow(10, 2-math.Floor(math.Log10(math.Abs(x))))
	return strconv.FormatFloat(math.Round(x*scale)/scale, 'f', -1, 64) + "%"
}

func signedPct(v float64) string {
	if v > 0 {
		return "+" + pct(v)
	}
	return pct(v)
}

// num formats a count with thousands separators.
func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func pvalue(p float64) string {
	if p < 0.0001 {
		return "< 0.0001"
	}
	return strconv.FormatFloat(p, 'f', 4, 64)
}

// peq is "p = 0.0123", or "p < 0.0001".
func peq(p float64) string {
	if p < 0.0001 {
		return "p < 0.0001"
	}
	return "p = " + pvalue(p)
}

// links builds the dashboard's URLs, carrying the filters it was opened with. It never
// carries a token: a browser signs in with a cookie (collector's /signin), and a token
// in a URL would end up in history, logs and Referer headers.
type links struct {
	base url.Values
}

func newLinks(r *http.Request, keep ...string) links {
	v := url.Values{}
	q := r.URL.Query()
	for _, k := range keep {
		if s := q.Get(k); s != "" {
			v.Set(k, s)
		}
	}
	return links{base: v}
}

// to returns path with the kept parameters, overridden by pairs (name, value; "" drops).
func (l links) to(path string, pairs ...string) string {
	v := url.Values{}
	for k, s := range l.base {
		v[k] = s
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			v.Del(pairs[i])
		} else {
			v.Set(pairs[i], pairs[i+1])
		}
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

type landingView struct {
	Title       string
	Back        string
	SignOut     bool // the header links to /signin to sign out
	Report      *stats.LandingReport
	AllSites    bool // no site chosen: every row names its site
	Rows        []landingRow
	Axis        []tick
	Clipped     int // pages under minAxisSessions whose bars are clipped
	MinAxis     int
	W           float64
	Sorts       []sortLink
	Prev, Next  string
	Experiments []experimentLink
	ExpIgnored  []string // filters the experiments list does not apply
	Form        map[string]string
	Sites       []siteOption
	Active      []activeFilter
	ClearAll    string
	Trend       *stats.TrendReport
	Chart       *trendChart
	Sources     *stats.SourcesReport
	SourceRows  []sourceRow
	SourceTabs  []sourceTab
	CSV         map[string]string // table → its CSV link
	Error       string
}

type landingRow struct {
	stats.LandingPage
	Display        string // the path, or a note for sessions without a pageview
	Referrers      string // link to the path's referrers; "" without a path
	Bar, Lo, Hi, W float64
	Clipped        bool // past the axis end: too few sessions to set it
}

type sortLink struct {
	Label, Href string
	Active      bool
	Arrow       string
}

type experimentLink struct {
	Name, Href string
	Visitors   int64
	Since      time.Time
}

func (d *Dashboard) landingPage(w http.ResponseWriter, r *http.Request) {
	v := &landingView{Title: "Overview", Form: map[string]string{}, W: barWidth,
		MinAxis: minAxisSessions, Back: newLinks(r, "site").to("/"), SignOut: d.signedIn(r)}
	q := r.URL.Query()
	for _, k := range filterKeys {
		v.Form[k] = q.Get(k)
	}
	lk := newLinks(r, "site", "from", "to", "utm_source", "utm_medium", "utm_campaign", "sort", "order", "limit", "by")
	fk := newLinks(r, "site", "from", "to", "utm_source", "utm_medium", "utm_campaign", "by")
	rk := newLinks(r, "from", "to")
	v.Active = activeFilters(r, fk)
	v.ClearAll = newLinks(r).to("/")
	v.CSV = map[string]string{}
	for _, t := range []string{"trend", "sources", "landing", "experiments"} {
		v.CSV[t] = lk.to("/", "format", "csv", "table", t)
	}
	// A table's CSV is the whole table, not the page of it on screen.
	v.CSV["landing"] = lk.to("/", "format", "csv", "table", "landing", "limit", "1000", "offset", "")
	v.CSV["sources"] = lk.to("/", "format", "csv", "table", "sources", "limit", "1000")
	lq, err := landingQuery(r, d.now())
	var tq stats.TrendQuery
	var sq stats.SourcesQuery
	if err == nil {
		tq, err = trendQuery(r, d.now())
	}
	if err == nil {
		sq, err = sourcesQuery(r, d.now())
		if q.Get("table") != "sources" {
			sq.Limit = 0 // limit is the landing table's; the panel shows the sources' default
		}
	}
	if err == nil {
		v.Report, err = d.q.LandingPages(r.Context(), lq)
	}
	if err == nil {
		v.Trend, err = d.q.Trend(r.Context(), tq)
	}
	if err == nil {
		v.Sources, err = d.q.Sources(r.Context(), sq)
	}
	var sites []stats.Source
	if err == nil {
		sites, err = d.q.Sites(r.Context(), stats.Filter{From: lq.From, To: lq.To})
	}
	v.Sites = siteOptions(sites, lq.Site)
	if d.queryFailed(w, r, err, "landing.html", v, &v.Error) {
		return
	}
	if q.Get("format") == "csv" {
		d.landingCSV(w, r, v)
		return
	}
	v.Chart = newTrendChart(v.Trend)
	v.sources(fk)
	rep := v.Report
	v.AllSites = rep.Site == ""
	scale := 0.0
	for _, p := range rep.Pages {
		if p.Sessions >= minAxisSessions {
			scale = max(scale, p.CI.High)
		}
	}
	scale = niceCeil(scale)
	for _, f := range []float64{0, 0.25, 0.5, 0.75, 1} {
		v.Axis = append(v.Axis, tick{X: barWidth * f, Label: axisPct(scale * f)})
	}
	clip := func(x float64) float64 { return math.Min(x, barWidth) }
	for _, p := range rep.Pages {
		row := landingRow{LandingPage: p, Display: p.Path, W: barWidth}
		if p.Path == "" {
			row.Display = "(no pageview yet)"
		} else {
			row.Referrers = rk.to("/referrers", "site", p.Site, "path", p.Path)
		}
		row.Bar = clip(barWidth * p.CVR / scale)
		row.Lo, row.Hi = clip(barWidth*p.CI.Low/scale), clip(barWidth*p.CI.High/scale)
		if row.Clipped = p.CI.High > scale; row.Clipped {
			v.Clipped++
		}
		v.Rows = append(v.Rows, row)
	}
	for _, s := range []struct{ key, label string }{{"path", "Landing page"}, {"sessions", "Sessions"},
		{"converted", "Converting"}, {"cvr", "CVR"}, {"cvr_low", "CVR, lower bound"}} {
		l := sortLink{Label: s.label, Active: rep.Sort == s.key}
		order := ""
		if l.Active {
			l.Arrow = map[string]string{"asc": "▲", "desc": "▼"}[rep.Order]
			order = map[string]string{"asc": "desc", "desc": "asc"}[rep.Order]
		}
		l.Href = lk.to("/", "sort", s.key, "order", order, "offset", "")
		v.Sorts = append(v.Sorts, l)
	}
	if rep.Offset > 0 {
		v.Prev = lk.to("/", "offset", strconv.Itoa(max(0, rep.Offset-rep.Limit)))
	}
	if rep.Offset+len(rep.Pages) < rep.Total {
		v.Next = lk.to("/", "offset", strconv.Itoa(rep.Offset+rep.Limit))
	}
	if err := d.experiments(r, v, lq); err != nil {
		d.serverError(w, r, err)
		return
	}
	d.render(w, http.StatusOK, "landing.html", v)
}

// experiments lists the experiments on the chosen site. The list counts every exposure
// ever: the dates and utm values of the filter are named as not applied.
func (d *Dashboard) experiments(r *http.Request, v *landingView, lq stats.LandingQuery) error {
	exps, err := d.q.Experiments(r.Context(), lq.Site)
	if err != nil {
		return err
	}
	el := newLinks(r, "site")
	for _, e := range exps {
		v.Experiments = append(v.Experiments, experimentLink{Name: e.Experiment, Visitors: e.Visitors,
			Since: time.UnixMilli(e.FirstMs), Href: el.to("/experiments/" + url.PathEscape(e.Experiment))})
	}
	for _, k := range filterKeys[1:] {
		if v.Form[k] != "" {
			v.ExpIgnored = append(v.ExpIgnored, k)
		}
	}
	return nil
}

// sources fills the sources panel: a tab per dimension, and rows that filter by their
// value where the dimension is a filter (utm values; the referrer is not one).
func (v *landingView) sources(fk links) {
	for _, by := range stats.SourceDimensions {
		v.SourceTabs = append(v.SourceTabs, sourceTab{Label: by, Href: fk.to("/", "by", by), Active: v.Sources.By == by})
	}
	for _, s := range v.Sources.Sources {
		row := sourceRow{Source: s, Display: s.Value}
		if s.Value == "" {
			row.Display = "(none)"
		}
		if v.Sources.By != "referrer" {
			// A session with no utm value cannot be filtered to: "" means any.
			if s.Value != "" {
				row.Filter = fk.to("/", v.Sources.By, s.Value, "offset", "")
			}
		}
		v.SourceRows = append(v.SourceRows, row)
	}
}

// niceCeil rounds a rate up to 1, 2 or 5 times a power of ten, for an axis end.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 0.01
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return math.Min(m*e, 1)
		}
	}
	return 1
}

type experimentView struct {
	Title    string
	Report   *stats.ExperimentReport
	Warnings []string // but the sample-ratio one, which has its own banner
	Rows     []variantRow
	Axis     []tick
	Zero     float64
	W        float64
	Back     string
	SignOut  bool
	Error    string
	Control  string
}

type variantRow struct {
	stats.Variant
	HasLift                   bool
	Dot, Lo, Hi, SeqLo, SeqHi float64
	SeqClipLo, SeqClipHi      bool
	Verdict                   string // better, worse, unclear
	Seq                       string // the always-valid verdict
}

type tick struct {
	X     float64
	Label string
}

// queryFailed answers a page whose query failed, and says whether it did: a bad query
// is the reader's to fix and is shown on the page (400); anything else is logged.
func (d *Dashboard) queryFailed(w http.ResponseWriter, r *http.Request, err error, page string, v any, shown *string) bool {
	if err == nil {
		return false
	}
	if !errors.Is(err, stats.ErrQuery) {
		d.serverError(w, r, err)
		return true
	}
	*shown = err.Error()
	d.render(w, http.StatusBadRequest, page, v)
	return true
}

func (d *Dashboard) serverError(w http.ResponseWriter, r *http.Request, err error) {
	d.log.Error("dashboard query failed", "path", r.URL.Path, "err", err)
	http.Error(w, "the query failed; see the server log", http.StatusInternalServerError)
}

func (d *Dashboard) experimentPage(w http.ResponseWriter, r *http.Request) {
	v := &experimentView{W: forestWidth, Back: newLinks(r, "site").to("/"), SignOut: d.signedIn(r)}
	v.Title = "Experiment " + r.PathValue("id")
	eq, err := experimentQuery(r, d.now())
	if err == nil {
		v.Report, err = d.q.Experiment(r.Context(), eq)
	}
	if d.queryFailed(w, r, err, "experiment.html", v, &v.Error) {
		return
	}
	for _, w := range v.Report.Warnings {
		if !strings.HasPrefix(w, "sample ratio mismatch") {
			v.Warnings = append(v.Warnings, w)
		}
	}
	// One axis for every variant: the 95% intervals and 0, padded; the always-valid
	// intervals are drawn clipped to it, with a mark where they run off.
	lo, hi := 0.0, 0.0
	for _, x := range v.Report.Variants {
		if l := x.Lift; l != nil && l.Relative != nil {
			lo, hi = math.Min(lo, l.CI.Low), math.Max(hi, l.CI.High)
		}
	}
	// The always-valid intervals are wider: the axis takes them in up to once more the
	// 95% span each way (and never below -100%, a lift's floor), so where they cross 0
	// the negative side has its labels.
	span := hi - lo
	for _, x := range v.Report.Variants {
		if l := x.Lift; l != nil && l.Relative != nil && l.SequentialRelative != nil {
			lo = math.Min(lo, math.Max(l.SequentialRelative.Low, math.Max(-1, l.CI.Low-span)))
			hi = math.Max(hi, math.Min(l.SequentialRelative.High, l.CI.High+span))
		}
	}
	if hi-lo < 0.1 {
		lo, hi = math.Min(lo, -0.05), math.Max(hi, 0.05)
	}
	pad := (hi - lo) * 0.08
	lo, hi = lo-pad, hi+pad
	step := niceStep((hi - lo) / 6)
	if lo < 0 && math.Ceil(lo/step)*step > -step/2 {
		// An axis that runs below 0 labels a tick there.
		lo = -step - pad/2
	}
	x := func(val float64) float64 { return forestWidth * (val - lo) / (hi - lo) }
	v.Zero = x(0)
	for t := math.Ceil(lo/step) * step; t <= hi; t += step {
		label := axisPct(t)
		if t > 1e-9 {
			label = "+" + label
		}
		v.Axis = append(v.Axis, tick{X: x(t), Label: label})
	}
	for _, vr := range v.Report.Variants {
		row := variantRow{Variant: vr, Verdict: "unclear", Seq: "unclear"}
		if l := vr.Lift; l != nil && l.Relative != nil {
			row.HasLift = true
			row.Dot, row.Lo, row.Hi = x(*l.Relative), x(l.CI.Low), x(l.CI.High)
			switch {
			case l.Significant && *l.Relative > 0:
				row.Verdict = "better"
			case l.Significant && *l.Relative < 0:
				row.Verdict = "worse"
			}
			if s := l.SequentialRelative; s != nil {
				row.SeqLo, row.SeqHi = math.Max(0, x(s.Low)), math.Min(forestWidth, x(s.High))
				row.SeqClipLo, row.SeqClipHi = x(s.Low) < 0, x(s.High) > forestWidth
				switch {
				case s.Low > 0:
					row.Seq = "better"
				case s.High < 0:
					row.Seq = "worse"
				}
			}
		}
		v.Rows = append(v.Rows, row)
	}
	d.render(w, http.StatusOK, "experiment.html", v)
}

// niceStep rounds a tick step to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

// csp allows the page nothing but its own inline styles and forms: no script at all.
const csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func (d *Dashboard) render(w http.ResponseWriter, status int, name string, v any) {
	var b bytes.Buffer
	if err := d.page.ExecuteTemplate(&b, name, v); err != nil {
		d.log.Error("render dashboard", "page", name, "err", err)
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
