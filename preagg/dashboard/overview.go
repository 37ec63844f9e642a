package dashboard

import (
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/rungdev/rung/preagg/stats"
)

// minAxisSessions is the sample below which a row does not set a CVR axis: one page
// with a session at 100% would otherwise squash every other bar to a sliver. Such
// rows are drawn clipped at the axis end, and the chart says so.
const minAxisSessions = 30

// Geometry of the trend charts, in SVG user units (drawn at the page's width).
const (
	trendWidth  = 640.0
	trendHeight = 120.0
	trendLeft   = 44.0 // room for the axis labels
)

// filterKeys are the URL parameters of the session filter, in caption order.
var filterKeys = []string{"site", "from", "to", "utm_source", "utm_medium", "utm_campaign"}

// activeFilter is one filter in the caption, with a link that drops it.
type activeFilter struct {
	Name, Value, Clear string
}

func activeFilters(r *http.Request, lk links) []activeFilter {
	var out []activeFilter
	q := r.URL.Query()
	for _, k := range filterKeys {
		if v := q.Get(k); v != "" {
			out = append(out, activeFilter{Name: k, Value: v, Clear: lk.to("/", k, "", "offset", "")})
		}
	}
	return out
}

// siteOption is one entry of the site picker.
type siteOption struct {
	Value    string
	Label    string
	Selected bool
}

// siteOptions offers every site seen in the range, and the chosen one even if it has
// no sessions there.
func siteOptions(sites []stats.Source, chosen string) []siteOption {
	out := []siteOption{{Value: "", Label: "All sites (kept apart)", Selected: chosen == ""}}
	found := false
	for _, s := range sites {
		found = found || s.Value == chosen
		out = append(out, siteOption{Value: s.Value, Label: s.Value + " · " + plural(s.Sessions, "session"), Selected: s.Value == chosen})
	}
	if chosen != "" && !found {
		out = append(out, siteOption{Value: chosen, Label: chosen + " · no sessions in this range", Selected: true})
	}
	return out
}

// plural writes a count with its noun, "1 visitor", "2 visitors".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return num(n) + " " + noun + "s"
}

// trendChart is the trend drawn as two charts sharing the time axis: sessions with
// their converting part as bars, and the CVR as a line in its 95% interval band.
type trendChart struct {
	W, H, Left, Plot float64
	Bars             []trendBar
	Line, Band       string // SVG points
	Dots             []trendDot
	Clipped          int  // buckets with too few sessions to set the CVR axis
	Empty            bool // no sessions in any bucket: the chart says so
	CountAxis        []yTick
	RateAxis         []yTick
	XLabels          []tick
	Layout           string // how a bucket's start is written
}

type trendBar struct {
	X, W, YS, HS, YC, HC float64
	Title                string
}

// trendDot is one bucket's CVR with its interval as a whisker, so a lone bucket with
// sessions shows as well as a run of them.
type trendDot struct {
	X, Y, Lo, Hi float64
}

type yTick struct {
	Y     float64
	Label string
}

func newTrendChart(rep *stats.TrendReport) *trendChart {
	c := &trendChart{W: trendWidth, H: trendHeight, Left: trendLeft, Plot: trendWidth - trendLeft, Layout: "2006-01-02 15:04"}
	if rep.Interval == "day" {
		c.Layout = "2006-01-02"
	}
	n := len(rep.Points)
	if n == 0 {
		c.Empty = true
		return c
	}
	var maxN int64
	rateMax := 0.0
	for _, p := range rep.Points {
		maxN = max(maxN, p.Sessions)
		if p.Sessions >= minAxisSessions {
			rateMax = max(rateMax, p.CI.High)
		}
	}
	c.Empty = maxN == 0
	countMax, counts := countTicks(maxN)
	rateMax = niceCeil(rateMax)
	slot := c.Plot / float64(n)
	y := func(v, top float64) float64 { return c.H - c.H*math.Min(v, top)/top }
	var line, lo, hi []string
	for i, p := range rep.Points {
		x := c.Left + slot*float64(i)
		b := trendBar{X: x + slot*0.1, W: math.Max(slot*0.8, 0.5),
			Title: fmt.Sprintf("%s: %s, %s converting (%s)", p.Start.Format(c.Layout), plural(p.Sessions, "session"), num(p.Converted), pct(p.CVR))}
		b.YS, b.YC = y(float64(p.Sessions), float64(countMax)), y(float64(p.Converted), float64(countMax))
		b.HS, b.HC = c.H-b.YS, c.H-b.YC
		c.Bars = append(c.Bars, b)
		if p.Sessions == 0 {
			continue
		}
		if p.Sessions < minAxisSessions {
			c.Clipped++
		}
		mid := x + slot/2
		c.Dots = append(c.Dots, trendDot{X: mid, Y: y(p.CVR, rateMax), Lo: y(p.CI.Low, rateMax), Hi: y(p.CI.High, rateMax)})
		line = append(line, fmt.Sprintf("%.1f,%.1f", mid, y(p.CVR, rateMax)))
		lo = append(lo, fmt.Sprintf("%.1f,%.1f", mid, y(p.CI.Low, rateMax)))
		hi = append([]string{fmt.Sprintf("%.1f,%.1f", mid, y(p.CI.High, rateMax))}, hi...)
	}
	c.Line = strings.Join(line, " ")
	c.Band = strings.Join(append(lo, hi...), " ")
	for _, n := range counts {
		c.CountAxis = append(c.CountAxis, yTick{Y: y(float64(n), float64(countMax)), Label: num(n)})
	}
	for _, f := range []float64{0, 0.5, 1} {
		c.RateAxis = append(c.RateAxis, yTick{Y: c.H - c.H*f, Label: axisPct(rateMax * f)})
	}
	// The axis writes hours without their year, to fit; each bucket's title has it.
	short := "2006-01-02"
	if rep.Interval == "hour" {
		short = "01-02 15:04"
	}
	every := max(1, (n+5)/6)
	for i := 0; i < n; i += every {
		c.XLabels = append(c.XLabels, tick{X: c.Left + slot*(float64(i)+0.5), Label: rep.Points[i].Start.Format(short)})
	}
	return c
}

// countTicks gives the count axis's end (niceCount of the largest count) and its ticks:
// 0, the middle and the end, leaving out a middle that is not a whole number (it would
// be labelled as one it is not), so no two ticks carry the same label.
func countTicks(maxN int64) (top int64, ticks []int64) {
	top = niceCount(maxN)
	if top%2 == 0 {
		return top, []int64{0, top / 2, top}
	}
	return top, []int64{0, top}
}

// niceCount rounds a count up to 1, 2 or 5 times a power of ten, at least 1.
func niceCount(n int64) int64 {
	if n <= 1 {
		return 1
	}
	e := int64(math.Pow(10, math.Floor(math.Log10(float64(n)))))
	for _, m := range []int64{1, 2, 5, 10} {
		if n <= m*e {
			return m * e
		}
	}
	return 10 * e
}

// sourceRow is one source with the link that filters the dashboard by it.
type sourceRow struct {
	stats.Source
	Display string
	Filter  string // "" when the dimension is not a filter (the referrer)
}

// sourceTab links one dimension of the sources panel.
type sourceTab struct {
	Label, Href string
	Active      bool
}
