package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is a run and its verification, as `rung bench --json` prints it.
type Report struct {
	Target      string    `json:"target"`
	Mode        string    `json:"mode"` // open or closed loop
	Rate        float64   `json:"target_rps,omitempty"`
	RampS       float64   `json:"ramp_s,omitempty"`
	Connections int       `json:"connections"`
	Batch       int       `json:"signals_per_request"`
	DurationS   float64   `json:"duration_s,omitempty"`
	Count       int64     `json:"count,omitempty"`
	Seed        uint64    `json:"seed"`
	Run         string    `json:"run"`
	Site        string    `json:"site"`
	Started     time.Time `json:"started"`
	ElapsedS    float64   `json:"elapsed_s"`

	Requests RequestFigures   `json:"requests"`
	Signals  SignalFigures    `json:"signals"`
	Status   map[string]int64 `json:"status"`
	Errors   map[string]int64 `json:"errors"`
	Reasons  map[string]int64 `json:"rejection_reasons"`

	// Latency is corrected for coordinated omission in open loop (from when each
	// request was due); Service is from the send. Both cover the time after the ramp.
	Latency Summary  `json:"latency"`
	Service *Summary `json:"service_time,omitempty"`

	Finish    FinishFigures `json:"finish"`
	Model     ModelRealized `json:"model"`
	Expect    Expectation   `json:"expectation"`
	Processes []ProcSummary `json:"processes"`
	Series    []Point       `json:"series"`
	// FinishSeries is the finish phase, second by second, apart from the timed series.
	FinishSeries []Point `json:"finish_series"`

	Verification *Verification `json:"verification,omitempty"`
}

// RequestFigures are the timed phase's requests.
type RequestFigures struct {
	Sent      int64   `json:"sent"`
	PerSecond float64 `json:"per_s"`
	Due       int64   `json:"due,omitempty"` // open loop: scheduled by the end
	// Achieved is sent ÷ due in open loop: below 1 the server (or the generator) could
	// not keep up with the schedule.
	Achieved float64 `json:"achieved,omitempty"`
}

// SignalFigures count signals over both phases; AcceptedPerSecond is the timed phase's.
type SignalFigures struct {
	Sent              int64   `json:"sent"`
	Accepted          int64   `json:"accepted"`
	Rejected          int64   `json:"rejected"`
	Unknown           int64   `json:"unknown_fate"`
	NotSent           int64   `json:"not_sent"`
	AcceptedPerSecond float64 `json:"accepted_per_s"`
	Inconsistent      int64   `json:"inconsistent_answers,omitempty"`
}

// FinishFigures are the untimed phase that completes the visitors' journeys. In open
// loop it keeps to the timed phase's rate, TargetRPS.
type FinishFigures struct {
	Requests   int64   `json:"requests"`
	Signals    int64   `json:"signals"`
	Unfinished int64   `json:"unfinished_visitors"`
	ElapsedS   float64 `json:"elapsed_s"`
	PerSecond  float64 `json:"per_s"`
	TargetRPS  float64 `json:"target_rps,omitempty"`
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize reads the figures of a histogram.
func Summarize(h *Histogram) Summary {
	return Summary{Count: h.Count(), Mean: ms(h.Mean()), P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)),
		P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max())}
}

// ProcSummary is one sampled process over the timed phase after the ramp.
type ProcSummary struct {
	Name       string  `json:"name"`
	CPUMean    float64 `json:"cpu_mean_pct"` // percent of one core; the machine has several
	RSSMaxMiB  float64 `json:"rss_max_mib"`
	RSSLastMiB float64 `json:"rss_last_mib"`
}

// NewReport assembles the report of a run; v may be nil.
func NewReport(res *Result, v *Verification) *Report {
	c := &res.Config
	r := &Report{Target: c.Target, Mode: "closed", Connections: c.Connections, Batch: c.Batch,
		DurationS: c.Duration.Seconds(), Count: c.Count, Seed: c.Model.Seed, Run: c.Model.Run, Site: c.Model.Site,
		Started: res.Start.UTC(), ElapsedS: res.Elapsed.Seconds(), Status: map[string]int64{},
		Errors: res.Errors, Reasons: res.Reasons, Latency: Summarize(res.Latency),
		Finish: FinishFigures{Requests: res.FinishRequests, Signals: res.FinishSignals, Unfinished: res.Unfinished,
			ElapsedS: res.FinishElapsed.Seconds(), TargetRPS: c.Rate},
		Model: res.Model, Expect: c.Model.Expect(), Series: res.Series, FinishSeries: res.FinishSeries, Verification: v}
	if r.Series == nil {
		r.Series = []Point{}
	}
	if r.FinishSeries == nil {
		r.FinishSeries = []Point{}
	}
	if res.FinishElapsed > 0 {
		r.Finish.PerSecond = float64(res.FinishRequests) / res.FinishElapsed.Seconds()
	}
	if c.Rate > 0 {
		r.Mode, r.Rate, r.RampS = "open", c.Rate, c.Ramp.Seconds()
		s := Summarize(res.Service)
		r.Service = &s
	}
	for k, n := range res.Status {
		r.Status[strconv.Itoa(k)] = n
	}
	r.Requests = RequestFigures{Sent: res.Requests, PerSecond: float64(res.Requests) / res.Elapsed.Seconds(), Due: res.Due}
	if res.Due > 0 {
		r.Requests.Achieved = float64(res.Requests) / float64(res.Due)
	}
	r.Signals = SignalFigures{Sent: res.Signals + res.FinishSignals, Accepted: res.Accepted, Rejected: res.Rejected,
		Unknown: res.Unknown, NotSent: res.NotSent, Inconsistent: res.Inconsistent,
		AcceptedPerSecond: float64(res.AcceptedTimed) / res.Elapsed.Seconds()}
	procs := map[string]*ProcSummary{}
	var order []string
	n := map[string]int{}
	for _, p := range res.Series {
		if p.T <= c.Ramp.Seconds() {
			continue
		}
		for _, pp := range p.Proc {
			s := procs[pp.Name]
			if s == nil {
				s = &ProcSummary{Name: pp.Name}
				procs[pp.Name] = s
				order = append(order, pp.Name)
			}
			s.CPUMean += pp.CPU
			n[pp.Name]++
			s.RSSMaxMiB = max(s.RSSMaxMiB, pp.RSSMiB)
			s.RSSLastMiB = pp.RSSMiB
		}
	}
	for _, name := range order {
		s := procs[name]
		s.CPUMean /= float64(n[name])
		r.Processes = append(r.Processes, *s)
	}
	return r
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report as tables for a person.
func (r *Report) WriteText(w io.Writer) error {
	b := &strings.Builder{}
	if r.Mode == "open" {
		fmt.Fprintf(b, "rung bench: open loop at %s requests/s", fmtFloat(r.Rate))
		if r.RampS > 0 {
			fmt.Fprintf(b, " (ramp %gs)", r.RampS)
		}
	} else {
		fmt.Fprintf(b, "rung bench: closed loop")
	}
	fmt.Fprintf(b, ", %d connections, %d signal(s) per request → %s/collect\n", r.Connections, r.Batch, r.Target)
	fmt.Fprintf(b, "seed %d, run %s, site %s, timed phase %.1fs\n\n", r.Seed, r.Run, r.Site, r.ElapsedS)

	t := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(t, "requests\t%s sent\t%s/s", fmtInt(r.Requests.Sent), fmtFloat(r.Requests.PerSecond))
	if r.Requests.Due > 0 {
		fmt.Fprintf(t, " of %s/s scheduled (%.1f%% of the %s due)", fmtFloat(r.Rate), 100*r.Requests.Achieved, fmtInt(r.Requests.Due))
	}
	fmt.Fprintln(t)
	fmt.Fprintf(t, "signals\t%s sent\t%s accepted (%s/s in the timed phase), %s rejected, %s unknown, %s not sent\n",
		fmtInt(r.Signals.Sent), fmtInt(r.Signals.Accepted), fmtFloat(r.Signals.AcceptedPerSecond),
		fmtInt(r.Signals.Rejected), fmtInt(r.Signals.Unknown), fmtInt(r.Signals.NotSent))
	fmt.Fprintf(t, "answers\t%s\t\n", joinCounts(r.Status, "HTTP "))
	if len(r.Errors) > 0 {
		fmt.Fprintf(t, "errors\t%s\t\n", joinCounts(r.Errors, ""))
	}
	for _, k := range sortedKeys(r.Reasons) {
		fmt.Fprintf(t, "rejected\t%s\t%q\n", fmtInt(r.Reasons[k]), k)
	}
	if r.Signals.Inconsistent > 0 {
		fmt.Fprintf(t, "inconsistent\t%s answers\tsaid accepted counts that disagree with their errors\n", fmtInt(r.Signals.Inconsistent))
	}
	fmt.Fprintf(t, "finish\t%s requests, %s signals\tin %.1fs after the timed phase, %s/s", fmtInt(r.Finish.Requests),
		fmtInt(r.Finish.Signals), r.Finish.ElapsedS, fmtFloat(r.Finish.PerSecond))
	if r.Finish.TargetRPS > 0 {
		fmt.Fprintf(t, " (target %s/s)", fmtFloat(r.Finish.TargetRPS))
	}
	fmt.Fprintf(t, ", untimed: completing the journeys started (%s left unfinished)\n", fmtInt(r.Finish.Unfinished))
	t.Flush()

	name := "from send"
	if r.Mode == "open" {
		name = "from due time"
	}
	b.WriteString(latencyTable(r, name))
	if r.Mode == "open" {
		b.WriteString("open loop: \"from due time\" counts the wait behind a slow answer (corrected for coordinated omission); \"from send\" does not.\n")
	}
	if r.RampS > 0 {
		fmt.Fprintf(b, "latency covers the %gs after the ramp.\n", r.DurationS-r.RampS)
	}

	if len(r.Processes) > 0 {
		b.WriteString("\n")
		t = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(t, "process\tCPU (%% of a core)\tRSS max\tRSS last\n")
		for _, p := range r.Processes {
			fmt.Fprintf(t, "%s\t%.0f%%\t%.0f MiB\t%.0f MiB\n", p.Name, p.CPUMean, p.RSSMaxMiB, p.RSSLastMiB)
		}
		t.Flush()
	}

	fmt.Fprintf(b, "\nmodel: %s visitors drew %s sessions (%.2f each; the model expects %.2f)",
		fmtInt(r.Model.Visitors), fmtInt(r.Model.Sessions), float64(r.Model.Sessions)/max(1, float64(r.Model.Visitors)), r.Expect.SessionsPerVisitor)
	b.WriteString("; rung sees one session per visitor: a run is too short for a 30-minute gap\n")
	if v := r.Verification; v != nil {
		writeVerification(b, v)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeVerification(b *strings.Builder, v *Verification) {
	l := &v.Landed
	fmt.Fprintf(b, "\nlanded == accepted, by event_id: %s", l.Status)
	if l.Status != StatusSkipped {
		fmt.Fprintf(b, " (%s accepted, %s stored, %s matched, %s missing, %s unexpected, %s duplicated; %s of unknown fate stored; waited %.1fs)",
			fmtInt(l.Accepted), fmtInt(l.Stored), fmtInt(l.Matched), fmtInt(l.Missing), fmtInt(l.Unexpected),
			fmtInt(l.Duplicates), fmtInt(l.UnknownStored), l.WaitedS)
	}
	b.WriteString("\n")
	if l.Note != "" {
		fmt.Fprintf(b, "  %s\n", l.Note)
	}
	if len(l.MissingIDs) > 0 {
		fmt.Fprintf(b, "  missing, for example: %s\n", strings.Join(l.MissingIDs, " "))
	}
	s := &v.Stats
	fmt.Fprintf(b, "stats API against the truth: %s\n", s.Status)
	if s.Note != "" {
		fmt.Fprintf(b, "  %s\n", s.Note)
	}
	if len(s.Experiment) > 0 {
		t := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(t, "  variant\tvisitors\t(truth)\tconverted\t(truth)\tCVR\ttrue CVR ± tolerance\tlift\tits 95%% CI\ttrue lift\tlift tolerance\n")
		for i, r := range s.Experiment {
			lift, ci, truth, tol := "-", "-", "-", "-"
			if r.Lift != nil {
				lift = fmt.Sprintf("%+.1f%%", 100**r.Lift)
			}
			if len(r.LiftCI) == 2 {
				ci = fmt.Sprintf("[%+.1f%%, %+.1f%%]", 100*r.LiftCI[0], 100*r.LiftCI[1])
				if r.CICoversTruth != nil && !*r.CICoversTruth {
					ci += " misses"
				}
			}
			if i > 0 {
				truth = fmt.Sprintf("%+.1f%%", 100*r.TrueLift)
			}
			if len(r.LiftTolerance) == 2 {
				tol = fmt.Sprintf("[%+.1f%%, %+.1f%%]", 100*r.LiftTolerance[0], 100*r.LiftTolerance[1])
			}
			fmt.Fprintf(t, "  %s\t%s\t%s\t%s\t%s\t%.2f%%\t%.2f%% ± %.2f\t%s\t%s\t%s\t%s\n", r.Name, fmtInt(r.Visitors), fmtInt(r.WantVisitors),
				fmtInt(r.Converted), fmtInt(r.WantConverted), 100*r.CVR, 100*r.TrueCVR, 100*r.CVRTolerance, lift, ci, truth, tol)
		}
		t.Flush()
	}
	if len(s.Landing) > 0 {
		t := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(t, "  landing page\tsessions\t(truth)\tconverted\t(truth)\tCVR\ttrue CVR ± tolerance\n")
		for _, r := range s.Landing {
			model := "-"
			if r.CVRTolerance > 0 {
				model = fmt.Sprintf("%.2f%% ± %.2f", 100*r.TrueCVR, 100*r.CVRTolerance)
			}
			fmt.Fprintf(t, "  %s\t%s\t%s\t%s\t%s\t%.2f%%\t%s\n", r.Path, fmtInt(r.Sessions), fmtInt(r.WantSessions),
				fmtInt(r.Converted), fmtInt(r.WantConverted), 100*r.CVR, model)
		}
		fmt.Fprintf(b, "  tolerances are the model's: the true rate ± %.2f standard errors at the counts reported (%.2f for all %d checks together; CVRs judged by the exact binomial)\n", s.ZEach, s.Z, s.Checks)
		t.Flush()
	}
	for _, p := range s.Problems {
		fmt.Fprintf(b, "  problem: %s\n", p)
	}
}

func latencyTable(r *Report, name string) string {
	b := &strings.Builder{}
	b.WriteString("\nlatency, ms:\n")
	t := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(t, "\tcount\tmean\tp50\tp90\tp99\tp99.9\tmax\t\n")
	row := func(name string, s Summary) {
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, fmtInt(int64(s.Count)), fmt3(s.Mean), fmt3(s.P50),
			fmt3(s.P90), fmt3(s.P99), fmt3(s.P999), fmt3(s.Max))
	}
	row(name, r.Latency)
	if r.Service != nil {
		row("from send", *r.Service)
	}
	t.Flush()
	return b.String()
}

func fmt3(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func fmtFloat(v float64) string {
	if v >= 100 {
		return fmtInt(int64(v + 0.5))
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func joinCounts(m map[string]int64, prefix string) string {
	keys := sortedKeys(m)
	sort.SliceStable(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s%s: %s", prefix, k, fmtInt(m[k])))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
