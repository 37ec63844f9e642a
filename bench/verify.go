package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// VerifyOptions says what to check a run against.
type VerifyOptions struct {
	Store    Store  // the sink; nil: the landed signals are not checked
	StatsURL string // rung's base URL for /v1/stats; "": CVR and lift are not checked
	APIToken string // for the stats API, when rung has one
	// Wait bounds the wait for the flush (and for the rollups to show it); default 60s.
	Wait time.Duration
	// Z is the level of the statistical checks as a whole, in standard errors; default
	// 3.29 (two-sided 99.9%), split between the checks (see levels).
	Z float64
}

// Check outcomes.
const (
	StatusOK      = "ok"
	StatusFailed  = "FAILED"
	StatusSkipped = "not checked"
)

// Verification is what the checks after the run found.
type Verification struct {
	Landed LandedCheck `json:"landed"`
	Stats  StatsCheck  `json:"stats"`
}

// Failed reports whether any check failed.
func (v *Verification) Failed() bool {
	return v.Landed.Status == StatusFailed || v.Stats.Status == StatusFailed
}

// LandedCheck compares, id by id, the signals rung accepted with those in the sink.
type LandedCheck struct {
	Status   string  `json:"status"`
	Note     string  `json:"note,omitempty"`
	WaitedS  float64 `json:"waited_s"`
	Accepted int64   `json:"accepted"`
	Stored   int64   `json:"stored"`
	Matched  int64   `json:"matched"`
	// Missing were accepted and are not stored; Unexpected are stored and were neither
	// accepted nor of unknown fate; Duplicates are stored more than once.
	Missing    int64 `json:"missing"`
	Unexpected int64 `json:"unexpected"`
	Duplicates int64 `json:"duplicates"`
	// Of the signals whose fate was unknown, how many were stored.
	UnknownStored int64    `json:"unknown_stored"`
	MissingIDs    []string `json:"missing_sample,omitempty"`
}

// StatsCheck compares rung's stats API with the truth.
type StatsCheck struct {
	Status  string  `json:"status"`
	Note    string  `json:"note,omitempty"`
	WaitedS float64 `json:"waited_s"`
	// Attempts is how many times the API was asked before it had caught up, the wait
	// was over, or it refused the credentials (which ends the wait at once).
	Attempts int     `json:"attempts"`
	Z        float64 `json:"z"` // the level of the model checks as a whole, in standard errors (two-sided)
	// Each of the Checks model checks is held to the same share of that level (a
	// Bonferroni split), so the whole check fails a rung that is right as rarely as Z
	// says, however many pages and variants the run had: ZEach is one check's level.
	Checks     int          `json:"checks"`
	ZEach      float64      `json:"z_each"`
	Landing    []LandingRow `json:"landing_pages,omitempty"`
	Experiment []VariantRow `json:"experiment,omitempty"`
	Problems   []string     `json:"problems,omitempty"`
	Truth      *Truth       `json:"truth,omitempty"`
	Expect     *Expectation `json:"model,omitempty"`
}

// LandingRow is one landing page as the API reported it, beside the truth.
type LandingRow struct {
	Path          string  `json:"path"`
	Sessions      int64   `json:"sessions"`
	Converted     int64   `json:"converted"`
	WantSessions  int64   `json:"want_sessions"`
	WantConverted int64   `json:"want_converted"`
	CVR           float64 `json:"cvr"`
	TrueCVR       float64 `json:"true_cvr,omitempty"`
	CVRTolerance  float64 `json:"cvr_tolerance,omitempty"`
}

// VariantRow is one variant as the API reported it, beside the truth and the model.
type VariantRow struct {
	Name          string    `json:"name"`
	Visitors      int64     `json:"visitors"`
	Converted     int64     `json:"converted"`
	WantVisitors  int64     `json:"want_visitors"`
	WantConverted int64     `json:"want_converted"`
	CVR           float64   `json:"cvr"`
	TrueCVR       float64   `json:"true_cvr"`
	CVRTolerance  float64   `json:"cvr_tolerance"` // ZEach standard errors at the true rate
	Lift          *float64  `json:"lift,omitempty"`
	LiftCI        []float64 `json:"lift_ci,omitempty"`
	TrueLift      float64   `json:"true_lift"`
	LiftTolerance []float64 `json:"lift_tolerance,omitempty"` // the range of lifts within ZEach standard errors of the truth
	CICoversTruth *bool     `json:"ci_covers_true_lift,omitempty"`
}

// Verify waits for the run's signals to land and checks them, then the stats API.
func Verify(ctx context.Context, res *Result, o VerifyOptions) *Verification {
	if o.Wait <= 0 {
		o.Wait = 60 * time.Second
	}
	if o.Z <= 0 {
		o.Z = 3.29
	}
	v := &Verification{}
	deadline := time.Now().Add(o.Wait)
	if o.Store == nil {
		v.Landed = LandedCheck{Status: StatusSkipped, Note: "no sink given (--clickhouse or --data-dir)", Accepted: res.Accepted}
	} else {
		v.Landed = checkLanded(ctx, res, o.Store, deadline)
	}
	if o.StatsURL == "" {
		v.Stats = StatsCheck{Status: StatusSkipped, Note: "no stats API given"}
	} else {
		v.Stats = checkStats(ctx, res, o, deadline)
	}
	return v
}

func checkLanded(ctx context.Context, res *Result, st Store, deadline time.Time) LandedCheck {
	site := res.Config.Model.Site
	c := LandedCheck{Accepted: res.Accepted}
	start := time.Now()
	// The flush is done when the sink holds what was accepted (and, if some fates are
	// unknown or something else landed, when the count has stopped moving for a second).
	var last int64 = -1
	stableSince := start
	for {
		n, err := st.Count(ctx, site)
		if err != nil {
			return LandedCheck{Status: StatusFailed, Note: err.Error(), Accepted: res.Accepted}
		}
		if n != last {
			last, stableSince = n, time.Now()
		}
		if n == res.Accepted && res.Unknown == 0 {
			break
		}
		if n >= res.Accepted && time.Since(stableSince) >= time.Second {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.Note = fmt.Sprintf("gave up waiting for the flush with %s of %s stored", fmtInt(n), fmtInt(res.Accepted))
			break
		}
		time.Sleep(100 * time.Millisecond) // polling the sink, not synchronising
	}
	c.WaitedS = time.Since(start).Seconds()

	m := &res.Config.Model
	landed := make([][]uint64, len(res.lanes))
	for i, l := range res.lanes {
		landed[i] = make([]uint64, len(l.visits))
	}
	L := int64(len(res.lanes))
	err := st.EventIDs(ctx, site, func(id string) {
		c.Stored++
		vis, seq, ok := m.ParseEventID(id)
		if !ok || res.visit(vis) == nil {
			c.Unexpected++
			return
		}
		w := &landed[vis%L][vis/L]
		if *w&(1<<seq) != 0 {
			c.Duplicates++
			return
		}
		*w |= 1 << seq
	})
	if err != nil {
		return LandedCheck{Status: StatusFailed, Note: err.Error(), Accepted: res.Accepted}
	}
	for i, l := range res.lanes {
		for j := range l.visits {
			vi, got := &l.visits[j], landed[i][j]
			c.Matched += int64(bits.OnesCount64(vi.accepted & got))
			c.Unexpected += int64(bits.OnesCount64(got &^ vi.accepted &^ vi.unknown))
			c.UnknownStored += int64(bits.OnesCount64(got & vi.unknown))
			miss := vi.accepted &^ got
			c.Missing += int64(bits.OnesCount64(miss))
			for miss != 0 && len(c.MissingIDs) < 5 {
				seq := bits.TrailingZeros64(miss)
				c.MissingIDs = append(c.MissingIDs, m.EventID(int64(i)+int64(j)*L, seq))
				miss &^= 1 << seq
			}
		}
	}
	c.Status = StatusOK
	if c.Missing > 0 || c.Unexpected > 0 || c.Duplicates > 0 {
		c.Status = StatusFailed
	}
	return c
}

// apiExperiment and apiLanding are the parts of rung's stats API answers checked here.
type apiExperiment struct {
	Control  string `json:"control"`
	Variants []struct {
		Name      string  `json:"name"`
		Visitors  int64   `json:"visitors"`
		Converted int64   `json:"converted"`
		CVR       float64 `json:"cvr"`
		Lift      *struct {
			Relative *float64 `json:"relative"`
			CI       *struct {
				Low  float64 `json:"low"`
				High float64 `json:"high"`
			} `json:"ci"`
		} `json:"lift"`
	} `json:"variants"`
}

type apiLanding struct {
	Total int `json:"total"`
	Pages []struct {
		Path      string  `json:"path"`
		Sessions  int64   `json:"sessions"`
		Converted int64   `json:"converted"`
		CVR       float64 `json:"cvr"`
	} `json:"pages"`
}

// CheckStatsAccess asks the stats API at statsURL once, with token, and fails with
// ErrUnauthorized if it refuses the credentials: a run whose verification is bound to
// be refused stops before it starts. Any other answer is left to the verification.
func CheckStatsAccess(ctx context.Context, statsURL, token string) error {
	var land apiLanding
	err := getJSON(ctx, VerifyOptions{StatsURL: statsURL, APIToken: token}, "/v1/stats/landing-pages",
		url.Values{"limit": {"1"}}, &land)
	if errors.Is(err, ErrUnauthorized) {
		return err
	}
	return nil
}

// errNoStats: the target does not serve the stats API.
var errNoStats = errors.New("no stats API")

func getJSON(ctx context.Context, o VerifyOptions, path string, q url.Values, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(o.StatsURL, "/")+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if o.APIToken != "" {
		req.Header.Set("Authorization", "Bearer "+o.APIToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: GET %s answered 404", errNoStats, path)
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		how := "give the stats API's token (--api-token)"
		if o.APIToken != "" {
			how = "the token given (--api-token) is not the one rung serve runs with"
		}
		return fmt.Errorf("%w: GET %s answered %d: %s", ErrUnauthorized, path, resp.StatusCode, how)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("GET %s answered %d: %.200s", path, resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("GET %s: decode: %w", path, err)
	}
	return nil
}

func checkStats(ctx context.Context, res *Result, o VerifyOptions, deadline time.Time) StatsCheck {
	m := &res.Config.Model
	truth := res.Truth()
	expect := m.Expect()
	c := StatsCheck{Truth: &truth, Expect: &expect, Z: o.Z}
	q := url.Values{
		"site": {m.Site},
		"from": {res.Start.Add(-time.Hour).UTC().Format(time.RFC3339)},
		"to":   {time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
	}
	eq := url.Values{"control": {m.Experiment.Variants[0].Name}}
	var weights []string
	for _, v := range m.Experiment.Variants {
		weights = append(weights, v.Name+":"+strconv.FormatFloat(v.Weight, 'g', -1, 64))
	}
	eq.Set("weights", strings.Join(weights, ","))
	lq := url.Values{"limit": {"1000"}, "sort": {"path"}}
	for k, v := range q {
		eq[k], lq[k] = v, v
	}
	start := time.Now()
	// The rollups are written with the raw signals; poll until they show the run or
	// the wait is over, then judge what they say.
	var exp apiExperiment
	var land apiLanding
	var err error
	for {
		c.Attempts++
		exp, land = apiExperiment{}, apiLanding{}
		err = getJSON(ctx, o, "/v1/stats/experiments/"+url.PathEscape(m.Experiment.Name), eq, &exp)
		if err == nil {
			err = getJSON(ctx, o, "/v1/stats/landing-pages", lq, &land)
		}
		if errors.Is(err, errNoStats) {
			c.Status, c.Note = StatusSkipped, "the target does not serve the stats API ("+err.Error()+"): CVR and lift not checked"
			return c
		}
		if (err == nil && statsCaughtUp(&exp, &land, &truth)) || errors.Is(err, ErrUnauthorized) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(250 * time.Millisecond) // polling the API, not synchronising
	}
	c.WaitedS = time.Since(start).Seconds()
	if err != nil {
		c.Status, c.Note = StatusFailed, err.Error()
		return c
	}
	// The model's rates describe whole journeys: with signals lost on the way, or
	// journeys cut short, only the exact comparison with what was accepted holds.
	model := res.Rejected+res.Unknown+res.NotSent == 0 && res.Unfinished == 0
	if model {
		c.Checks, c.ZEach = levels(&truth, o.Z)
	}
	c.Landing, c.Experiment, c.Problems = judge(&exp, &land, &truth, m, &expect, o.Z, model)
	if !model {
		c.Note = "signals were refused or lost, or journeys left unfinished: compared with what was accepted only, not with the model's rates"
	}
	c.Status = StatusOK
	if len(c.Problems) > 0 {
		c.Status = StatusFailed
	}
	if truth.Uncertain > 0 {
		c.Note += fmt.Sprintf("%d visitors had a signal of unknown fate: exact counts may differ by that much", truth.Uncertain)
	}
	return c
}

// statsCaughtUp reports whether the API's counts have reached the truth's totals.
func statsCaughtUp(exp *apiExperiment, land *apiLanding, t *Truth) bool {
	var sessions, visitors, want int64
	for _, p := range land.Pages {
		sessions += p.Sessions
	}
	for _, v := range exp.Variants {
		visitors += v.Visitors
	}
	for _, v := range t.Variants {
		want += v.Visitors
	}
	return sessions >= t.Sessions && visitors >= want
}

// levels splits the two-sided level z (in standard errors) between the model checks the
// truth t makes (a CVR per landing page and per variant, a lift per variant but the
// control) and returns their number and one check's level.
func levels(t *Truth, z float64) (checks int, zEach float64) {
	for _, w := range t.Landing {
		if w.Sessions > 0 {
			checks++
		}
	}
	for i, v := range t.Variants {
		if v.Visitors > 0 {
			checks++
			if i > 0 {
				checks++
			}
		}
	}
	alpha := math.Erfc(z / math.Sqrt2)
	return checks, math.Sqrt2 * math.Erfinv(1-alpha/float64(max(checks, 1)))
}

// binomialP is the two-sided p-value of k successes in n trials of rate p: twice the
// exact tail on k's side of the mean. The normal approximation is no good here: at
// the small counts of a short run's landing pages, a binomial's upper tail is far
// longer than the normal's (6 of 33 at 5.2% is 3.3 standard errors out, yet a count
// that far out, either way, comes once in 77 runs).
func binomialP(n, k int64, p float64) float64 {
	if n <= 0 || p <= 0 || p >= 1 {
		return 1
	}
	lf := func(i int64) float64 { v, _ := math.Lgamma(float64(i) + 1); return v }
	lnN, lp, lq := lf(n), math.Log(p), math.Log1p(-p)
	pmf := func(i int64) float64 { return math.Exp(lnN - lf(i) - lf(n-i) + float64(i)*lp + float64(n-i)*lq) }
	step := int64(1)
	if float64(k) < float64(n)*p {
		step = -1
	}
	var tail float64
	for i := k; i >= 0 && i <= n; i += step {
		t := pmf(i)
		tail += t
		if t < tail*1e-17 {
			break
		}
	}
	return min(1, 2*tail)
}

// judge compares the API's answers with the truth (exactly, up to the uncertain
// visitors) and, when model is set, with the model's rates (at the level z, split
// between the checks; see levels), and lists every problem.
func judge(exp *apiExperiment, land *apiLanding, t *Truth, m *Model, e *Expectation, z float64, model bool) ([]LandingRow, []VariantRow, []string) {
	var problems []string
	checks, zEach := levels(t, z)
	alpha := math.Erfc(zEach / math.Sqrt2) // one check's two-sided level
	implausible := func(what string, k, n int64, p float64) {
		if pv := binomialP(n, k, p); pv < alpha {
			problems = append(problems, fmt.Sprintf("%s: CVR %.4f (%d of %d) is implausible at the true %.4f: p = %.2g (exact binomial, two-sided), below the %.2g allowed each of %d checks",
				what, float64(k)/float64(n), k, n, p, pv, alpha, checks))
		}
	}
	slack := t.Uncertain
	near := func(got, want int64) bool { return got >= want-slack && got <= want+slack }

	var rows []LandingRow
	api := map[string]int{}
	for i, p := range land.Pages {
		api[p.Path] = i
	}
	for _, w := range t.Landing {
		r := LandingRow{Path: w.Path, WantSessions: w.Sessions, WantConverted: w.Converted}
		if i, ok := api[w.Path]; ok {
			p := land.Pages[i]
			r.Sessions, r.Converted, r.CVR = p.Sessions, p.Converted, p.CVR
			delete(api, w.Path)
		}
		if !near(r.Sessions, r.WantSessions) || !near(r.Converted, r.WantConverted) {
			problems = append(problems, fmt.Sprintf("landing page %q: API says %d sessions, %d converted; the accepted signals make %d, %d",
				w.Path, r.Sessions, r.Converted, r.WantSessions, r.WantConverted))
		}
		// A session is a visitor here, and who converts does not depend on where they
		// land: every landing page's true CVR is the population's.
		if p := e.CVR; model && r.Sessions > 0 {
			r.TrueCVR, r.CVRTolerance = p, zEach*math.Sqrt(p*(1-p)/float64(r.Sessions))
			implausible(fmt.Sprintf("landing page %q", w.Path), r.Converted, r.Sessions, p)
		}
		rows = append(rows, r)
	}
	for path, i := range api {
		p := land.Pages[i]
		rows = append(rows, LandingRow{Path: path, Sessions: p.Sessions, Converted: p.Converted, CVR: p.CVR})
		problems = append(problems, fmt.Sprintf("landing page %q: API says %d sessions; the run sent none there", path, p.Sessions))
	}

	var vrows []VariantRow
	apiV := map[string]int{}
	for i, v := range exp.Variants {
		apiV[v.Name] = i
	}
	var control *VariantRow
	for i, w := range t.Variants {
		truth := e.Variants[i]
		r := VariantRow{Name: w.Name, WantVisitors: w.Visitors, WantConverted: w.Converted, TrueCVR: truth.CVR, TrueLift: truth.Lift}
		if k, ok := apiV[w.Name]; ok {
			a := exp.Variants[k]
			r.Visitors, r.Converted, r.CVR = a.Visitors, a.Converted, a.CVR
			if a.Lift != nil && a.Lift.Relative != nil {
				lift := *a.Lift.Relative
				r.Lift = &lift
				if a.Lift.CI != nil {
					r.LiftCI = []float64{a.Lift.CI.Low, a.Lift.CI.High}
					covers := a.Lift.CI.Low <= truth.Lift && truth.Lift <= a.Lift.CI.High
					r.CICoversTruth = &covers
				}
			}
		}
		if !near(r.Visitors, r.WantVisitors) || !near(r.Converted, r.WantConverted) {
			problems = append(problems, fmt.Sprintf("variant %q: API says %d visitors, %d converted; the accepted signals make %d, %d",
				w.Name, r.Visitors, r.Converted, r.WantVisitors, r.WantConverted))
		}
		if model && r.Visitors > 0 {
			p := truth.CVR
			r.CVRTolerance = zEach * math.Sqrt(p*(1-p)/float64(r.Visitors))
			implausible(fmt.Sprintf("variant %q", w.Name), r.Converted, r.Visitors, p)
		}
		if i == 0 {
			control = &r
		} else if model && control != nil && r.Visitors > 0 && control.Visitors > 0 && truth.CVR > 0 && control.TrueCVR > 0 {
			// The log of the risk ratio is near normal with this standard error at the
			// true rates (the delta method): the tolerance the model implies for lift.
			se := math.Sqrt((1-truth.CVR)/(float64(r.Visitors)*truth.CVR) + (1-control.TrueCVR)/(float64(control.Visitors)*control.TrueCVR))
			lo, hi := (1+truth.Lift)*math.Exp(-zEach*se)-1, (1+truth.Lift)*math.Exp(zEach*se)-1
			r.LiftTolerance = []float64{lo, hi}
			switch {
			case r.Lift == nil:
				problems = append(problems, fmt.Sprintf("variant %q: the API reports no lift", w.Name))
			case *r.Lift < lo || *r.Lift > hi:
				problems = append(problems, fmt.Sprintf("variant %q: lift %+.4f is outside [%+.4f, %+.4f], %.2f standard errors around the true %+.4f",
					w.Name, *r.Lift, lo, hi, zEach, truth.Lift))
			}
		}
		vrows = append(vrows, r)
	}
	if len(exp.Variants) > 0 && exp.Control != "" && exp.Control != m.Experiment.Variants[0].Name {
		problems = append(problems, fmt.Sprintf("the API takes %q as the control; the model's is %q", exp.Control, m.Experiment.Variants[0].Name))
	}
	return rows, vrows, problems
}
