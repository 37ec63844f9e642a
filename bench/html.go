package bench

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
)

// WriteHTML writes the report as one self-contained page: no script, no external
// resource; the charts are inline SVG drawn here.
func (r *Report) WriteHTML(w io.Writer) error {
	var text strings.Builder
	if err := r.WriteText(&text); err != nil {
		return err
	}
	// One time axis for both phases; each phase's figures are their own lines, NaN
	// (not drawn) in the other phase, and a rule marks where the finish phase starts.
	all := append(slices.Clone(r.Series), r.FinishSeries...)
	xs := make([]float64, len(all))
	for i, p := range all {
		xs[i] = p.T
	}
	col := func(f func(p Point) float64) []float64 {
		out := make([]float64, len(all))
		for i, p := range all {
			out[i] = f(p)
		}
		return out
	}
	in := func(phase string, f func(p Point) float64) []float64 {
		return col(func(p Point) float64 {
			if p.Phase != phase {
				return math.NaN()
			}
			return f(p)
		})
	}
	finishAt := math.NaN()
	if len(r.FinishSeries) > 0 && len(r.Series) > 0 {
		finishAt = r.Series[len(r.Series)-1].T
	}
	var charts []template.HTML
	charts = append(charts, svgChart("Latency over time (ms, log scale)"+latencyNote(r), xs, finishAt, []line{
		{"p50", "#1b9e77", in(PhaseTimed, func(p Point) float64 { return p.P50 }), false},
		{"p90", "#7570b3", in(PhaseTimed, func(p Point) float64 { return p.P90 }), false},
		{"p99", "#d95f02", in(PhaseTimed, func(p Point) float64 { return p.P99 }), false},
		{"max", "#e7298a", in(PhaseTimed, func(p Point) float64 { return p.Max }), true},
	}, true))
	tput := []line{
		{"timed requests/s", "#1f78b4", in(PhaseTimed, func(p Point) float64 { return p.Requests }), false},
		{"finish requests/s", "#a6cee3", in(PhaseFinish, func(p Point) float64 { return p.Requests }), false},
	}
	if r.Mode == "open" {
		tput = append(tput, line{"target requests/s", "#999999", col(func(p Point) float64 { return p.Target }), true})
	}
	charts = append(charts, svgChart("Throughput over time: requests/s", xs, finishAt, tput, false))
	charts = append(charts, svgChart("Throughput over time: signals accepted/s", xs, finishAt, []line{
		{"timed", "#33a02c", in(PhaseTimed, func(p Point) float64 { return p.Accepted }), false},
		{"finish", "#b2df8a", in(PhaseFinish, func(p Point) float64 { return p.Accepted }), false},
	}, false))
	if len(r.Series) > 0 && len(r.Series[len(r.Series)-1].Proc) > 0 {
		var cpu, rss []line
		colors := []string{"#1f78b4", "#e31a1c", "#33a02c", "#ff7f00", "#6a3d9a"}
		for i, pp := range r.Series[len(r.Series)-1].Proc {
			name := pp.Name
			get := func(f func(ProcPoint) float64) []float64 {
				return col(func(p Point) float64 {
					for _, q := range p.Proc {
						if q.Name == name {
							return f(q)
						}
					}
					return math.NaN()
				})
			}
			c := colors[i%len(colors)]
			cpu = append(cpu, line{name, c, get(func(q ProcPoint) float64 { return q.CPU }), false})
			rss = append(rss, line{name, c, get(func(q ProcPoint) float64 { return q.RSSMiB }), false})
		}
		charts = append(charts, svgChart("CPU (% of one core)", xs, finishAt, cpu, false), svgChart("Resident memory (MiB)", xs, finishAt, rss, false))
	}
	return page.Execute(w, struct {
		Title  string
		Text   string
		Charts []template.HTML
	}{fmt.Sprintf("rung bench %s: %s", r.Run, r.Target), text.String(), charts})
}

func latencyNote(r *Report) string {
	if r.Mode == "open" {
		return ", from when each request was due"
	}
	return ""
}

type line struct {
	name, color string
	ys          []float64
	dashed      bool
}

// svgChart draws lines over a shared x axis (seconds) with labelled axes, and a rule
// at finishAt, where the finish phase starts (NaN: none).
func svgChart(title string, xs []float64, finishAt float64, lines []line, logY bool) template.HTML {
	const w, h, left, right, top, bottom = 860.0, 260.0, 70.0, 150.0, 30.0, 36.0
	pw, ph := w-left-right, h-top-bottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" width="%g" height="%g" role="img">`, w, h, w, h)
	fmt.Fprintf(&b, `<text x="%g" y="18" font-size="14" font-weight="bold">%s</text>`, left, template.HTMLEscapeString(title))
	if len(xs) == 0 {
		b.WriteString(`<text x="70" y="120">no samples</text></svg>`)
		return template.HTML(b.String())
	}
	xmax := xs[len(xs)-1]
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, l := range lines {
		for _, y := range l.ys {
			if math.IsNaN(y) || (logY && y <= 0) {
				continue
			}
			ymin, ymax = min(ymin, y), max(ymax, y)
		}
	}
	if math.IsInf(ymin, 0) {
		ymin, ymax = 0, 1
	}
	tr := func(y float64) float64 { return y }
	if logY {
		tr = math.Log10
		ymin, ymax = math.Pow(10, math.Floor(math.Log10(ymin))), math.Pow(10, math.Ceil(math.Log10(ymax)))
		if ymin == ymax {
			ymax *= 10
		}
	} else {
		ymin = 0
		ymax = niceCeil(ymax)
	}
	px := func(x float64) float64 { return left + pw*x/math.Max(xmax, 1e-9) }
	py := func(y float64) float64 { return top + ph*(1-(tr(y)-tr(ymin))/(tr(ymax)-tr(ymin))) }
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#ccc"/>`, left, top, pw, ph)
	var ticks []float64
	if logY {
		for t := ymin; t <= ymax*1.0001; t *= 10 {
			ticks = append(ticks, t)
		}
	} else {
		for i := 0; i <= 4; i++ {
			ticks = append(ticks, ymax*float64(i)/4)
		}
	}
	for _, t := range ticks {
		y := py(t)
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#eee"/><text x="%g" y="%.1f" font-size="11" text-anchor="end">%s</text>`,
			left, y, left+pw, y, left-6, y+4, axisLabel(t))
	}
	for i := 0; i <= 5; i++ {
		x := xmax * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" font-size="11" text-anchor="middle">%.0fs</text>`, px(x), top+ph+16, x)
	}
	if !math.IsNaN(finishAt) {
		x := px(finishAt)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#888" stroke-dasharray="2,3"/><text x="%.1f" y="%g" font-size="11" fill="#555">finish →</text>`,
			x, top, x, top+ph, x+4, top+12)
	}
	for i, l := range lines {
		var pts []string
		for k, y := range l.ys {
			if math.IsNaN(y) || (logY && y <= 0) {
				continue
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(xs[k]), py(y)))
		}
		if len(pts) == 0 {
			continue
		}
		dash := ""
		if l.dashed {
			dash = ` stroke-dasharray="5,4"`
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8"%s points="%s"/>`, l.color, dash, strings.Join(pts, " "))
		ly := top + 14 + float64(i)*18
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="3"%s/><text x="%g" y="%g" font-size="12">%s</text>`,
			left+pw+10, ly-4, left+pw+30, ly-4, l.color, dash, left+pw+36, ly, template.HTMLEscapeString(l.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func axisLabel(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%gk", v/1e3)
	case v >= 1 || v == 0:
		return fmt.Sprintf("%g", v)
	}
	return fmt.Sprintf("%.3g", v)
}

var page = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; line-height: 1.35; }
svg { display: block; margin: 1.5em 0; }
</style></head><body>
<h1>{{.Title}}</h1>
{{range .Charts}}{{.}}{{end}}
<h2>Report</h2>
<pre>{{.Text}}</pre>
</body></html>
`))
