package place

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
)

func newEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

// answers parses "needs_history=yes hot_path=no" into a map.
func answers(t testing.TB, s string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("bad answer %q in %q", f, s)
		}
		m[k] = v
	}
	return m
}

type want struct {
	tier     int
	level    Level
	verdict  Verdict
	warnings []string // kinds, in order
}

func (w want) String() string {
	return fmt.Sprintf("tier %d, %s, %s, warnings %v", w.tier, w.level, w.verdict, w.warnings)
}

func got(r Result) want {
	w := want{tier: r.Tier, level: r.Level, verdict: r.Verdict}
	for _, x := range r.Warnings {
		w.warnings = append(w.warnings, x.Kind)
	}
	return w
}

func (w want) equal(o want) bool {
	return w.tier == o.tier && w.level == o.level && w.verdict == o.verdict && slices.Equal(w.warnings, o.warnings)
}

// pathTable is every path through the questionnaire, written out by hand from the
// ladder's rules — not from the code. TestEveryPath walks the questionnaire on its own
// and demands that the paths it finds are exactly these.
func pathTable() map[string]want {
	t := map[string]want{
		"needs_history=no hot_path=no":                         {1, LevelNone, NoEvents, nil},
		"needs_history=no hot_path=yes":                        {2, LevelNone, NoEvents, nil},
		"needs_history=yes fixed_cadence_ok=yes needs_flow=no": {3, LevelNone, NoEvents, nil},
	}
	// Tier 4 and 5 are reached two ways: no fixed cadence is enough, or a cadence would
	// be but the stat needs flow — which contradicts a snapshot, hence a too_low warning.
	entries := map[string][]string{
		"needs_history=yes fixed_cadence_ok=no":                 nil,
		"needs_history=yes fixed_cadence_ok=yes needs_flow=yes": {WarnTooLow},
	}
	for prefix, pre := range entries {
		add := func(rest string, tier int, l Level, v Verdict, warns ...string) {
			t[prefix+" "+rest] = want{tier, l, v, append(slices.Clone(pre), warns...)}
		}
		// Tier 5: the outbox is the floor, the broker when another service consumes;
		// a lossy pipe contradicts events being the record.
		add("needs_past_state=yes cross_service=no loss_ok=no", 5, LevelOutbox, Required)
		add("needs_past_state=yes cross_service=no loss_ok=yes", 5, LevelOutbox, Required, WarnContradiction)
		add("needs_past_state=yes cross_service=yes loss_ok=no", 5, LevelBroker, Valid)
		add("needs_past_state=yes cross_service=yes loss_ok=yes", 5, LevelBroker, Valid, WarnContradiction)
		// Tier 4, insight-grade: broker for other services, the sink for web signals,
		// in-process when a loss is fine, else the outbox (ideal).
		add("needs_past_state=no money_grade=no cross_service=yes", 4, LevelBroker, Valid)
		add("needs_past_state=no money_grade=no cross_service=no anonymous_high_volume=yes", 4, LevelTelemetrySink, Valid)
		add("needs_past_state=no money_grade=no cross_service=no anonymous_high_volume=no loss_ok=yes", 4, LevelInProcess, Valid)
		add("needs_past_state=no money_grade=no cross_service=no anonymous_high_volume=no loss_ok=no", 4, LevelOutbox, Ideal)
		// Tier 4, money-grade: the outbox is required (the broker fed by it for other
		// services); web signals are the wrong source, accepting loss is dangerous.
		for _, cross := range []string{"no", "yes"} {
			l, v := LevelOutbox, Required
			if cross == "yes" {
				l, v = LevelBroker, Valid
			}
			for _, anon := range []string{"no", "yes"} {
				for _, loss := range []string{"no", "yes"} {
					var warns []string
					if anon == "yes" {
						warns = append(warns, WarnWrongSource)
					}
					if loss == "yes" {
						warns = append(warns, WarnDangerous)
					}
					add(fmt.Sprintf("needs_past_state=no money_grade=yes cross_service=%s anonymous_high_volume=%s loss_ok=%s", cross, anon, loss), 4, l, v, warns...)
				}
			}
		}
	}
	return t
}

// walk answers every question both ways, depth first, and calls leaf with the path of
// each complete set of answers.
func walk(t *testing.T, e *Engine, path []string, ans map[string]string, leaf func(path string, ans map[string]string)) {
	t.Helper()
	if len(path) > len(e.questions) {
		t.Fatalf("path longer than the questionnaire: %v", path)
	}
	prog := e.Progress(ans)
	if prog.Complete {
		leaf(strings.Join(path, " "), ans)
		return
	}
	for _, v := range []string{No, Yes} {
		next := maps.Clone(ans)
		next[prog.Next] = v
		walk(t, e, append(slices.Clone(path), prog.Next+"="+v), next, leaf)
	}
}

func TestEveryPath(t *testing.T) {
	e := newEngine(t)
	table := pathTable()
	seen := map[string]bool{}
	walk(t, e, nil, map[string]string{}, func(path string, ans map[string]string) {
		seen[path] = true
		w, ok := table[path]
		if !ok {
			t.Errorf("the questionnaire has a path the table lacks: %s", path)
			return
		}
		res, err := e.Place(Request{Answers: ans})
		if err != nil {
			t.Errorf("%s: %v", path, err)
			return
		}
		if g := got(res); !g.equal(w) {
			t.Errorf("%s:\n got %v\nwant %v", path, g, w)
		}
		// The path the result reports is the path taken, and every other question is
		// reported skipped.
		var steps []string
		for _, a := range res.Path {
			steps = append(steps, a.Question+"="+a.Answer)
			if a.Because == "" {
				t.Errorf("%s: no reason for %s", path, a.Question)
			}
		}
		if strings.Join(steps, " ") != path {
			t.Errorf("result path %q, want %q", strings.Join(steps, " "), path)
		}
		if len(res.Path)+len(res.Skipped) != len(e.questions) {
			t.Errorf("%s: %d answered + %d skipped != %d questions", path, len(res.Path), len(res.Skipped), len(e.questions))
		}
		// The verdict is the matrix's, for the row the answers chose.
		money := res.Tier == 4 && ans[MoneyGrade] == Yes
		if c, _ := e.Matrix().Cell(RowFor(res.Tier, money), res.Level); c != res.Cell {
			t.Errorf("%s: cell %+v, matrix says %+v", path, res.Cell, c)
		}
		// Cards and triggers come with the rung.
		if res.Card == nil || res.Card.Tier != res.Tier {
			t.Errorf("%s: card %+v for tier %d", path, res.Card, res.Tier)
		}
		if (res.LevelCard == nil) != (res.Level == LevelNone) || res.LevelCard != nil && res.LevelCard.Level != res.Level {
			t.Errorf("%s: level card %+v for level %s", path, res.LevelCard, res.Level)
		}
		if len(res.Triggers) == 0 {
			t.Errorf("%s: no triggers", path)
		}
		// Answers to skipped questions are ignored: answering them all, either way,
		// changes nothing.
		for _, v := range []string{Yes, No} {
			full := maps.Clone(ans)
			for _, q := range res.Skipped {
				full[q] = v
			}
			res2, err := e.Place(Request{Answers: full})
			if err != nil {
				t.Errorf("%s with skipped=%s: %v", path, v, err)
			} else if !got(res2).equal(got(res)) {
				t.Errorf("%s with skipped=%s: %v, without: %v", path, v, got(res2), got(res))
			}
		}
	})
	for path := range table {
		if !seen[path] {
			t.Errorf("the table has a path the questionnaire never takes: %s", path)
		}
	}
	if len(seen) != 35 {
		t.Errorf("%d paths, want 35", len(seen))
	}
}

// TestLadderExamples places the ladder's own examples where the ladder places them.
func TestLadderExamples(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		name    string
		answers string
		want    want
	}{
		{"how many contacts", "needs_history=no hot_path=no",
			want{1, LevelNone, NoEvents, nil}},
		{"contacts at each month-end", "needs_history=yes fixed_cadence_ok=yes needs_flow=no",
			want{3, LevelNone, NoEvents, nil}},
		{"commission on closed deals by lead source",
			"needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=yes cross_service=no anonymous_high_volume=no loss_ok=no",
			want{4, LevelOutbox, Required, nil}},
		{"landing-page CVR from page views",
			"needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=no cross_service=no anonymous_high_volume=yes",
			want{4, LevelTelemetrySink, Valid, nil}},
		{"regulatory replay", "needs_history=yes fixed_cadence_ok=no needs_past_state=yes cross_service=no loss_ok=no",
			want{5, LevelOutbox, Required, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Place(Request{Answers: answers(t, tc.answers)})
			if err != nil {
				t.Fatal(err)
			}
			if g := got(res); !g.equal(tc.want) {
				t.Fatalf("got %v, want %v", g, tc.want)
			}
		})
	}
	// The marks the ladder gives those pairings.
	res, _ := e.Place(Request{Answers: answers(t, "needs_history=yes fixed_cadence_ok=no needs_past_state=yes cross_service=no loss_ok=no")})
	if res.Cell.Mark != "floor" {
		t.Errorf("regulatory replay mark %q, want floor", res.Cell.Mark)
	}
	res, _ = e.Place(Request{Answers: answers(t, "needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=no cross_service=no anonymous_high_volume=yes")})
	if res.Cell.Mark != "telemetry" {
		t.Errorf("landing-page CVR mark %q, want telemetry", res.Cell.Mark)
	}
}

// TestMatrix checks every cell against the ladder's matrix.
func TestMatrix(t *testing.T) {
	m := newEngine(t).Matrix()
	type cell struct {
		v    Verdict
		mark string
		foot int
	}
	na := cell{NotApplicable, "N/A", 0}
	table := map[Row]map[Level]cell{
		RowTiers1to3: {LevelTelemetrySink: na, LevelInProcess: na, LevelOutbox: na, LevelBroker: na},
		RowTier4Insight: {
			LevelTelemetrySink: {Valid, "telemetry", 0}, LevelInProcess: {Valid, "ok", 0},
			LevelOutbox: {Ideal, "ideal", 0}, LevelBroker: {Valid, "multi-svc", 0},
		},
		RowTier4Money: {
			LevelTelemetrySink: {WrongSource, "wrong src", 0}, LevelInProcess: {Dangerous, "dangerous", 1},
			LevelOutbox: {Required, "required", 0}, LevelBroker: {Valid, "✓", 0},
		},
		RowTier5: {
			LevelTelemetrySink: na, LevelInProcess: {Contradiction, "contradiction", 2},
			LevelOutbox: {Required, "floor", 0}, LevelBroker: {Valid, "✓", 0},
		},
	}
	n := 0
	for _, r := range Rows() {
		for _, l := range Levels() {
			c, ok := m.Cell(r, l)
			if !ok {
				t.Fatalf("no cell %s × %s", r, l)
			}
			w := table[r][l]
			if c.Verdict != w.v || c.Mark != w.mark || c.Footnote != w.foot || c.Row != r || c.Level != l {
				t.Errorf("%s × %s = %+v, want %+v", r, l, c, w)
			}
			if len(c.Reason) < 40 {
				t.Errorf("%s × %s: reason too thin: %q", r, l, c.Reason)
			}
			n++
		}
	}
	if n != 16 {
		t.Errorf("%d cells, want 16", n)
	}
	// Tiers 1–3 have no level at all.
	if c, ok := m.Cell(RowTiers1to3, LevelNone); !ok || c.Verdict != NotApplicable || c.Level != LevelNone {
		t.Errorf("tiers 1–3 × none = %+v, %v", c, ok)
	}
	for _, r := range []Row{RowTier4Insight, RowTier4Money, RowTier5} {
		if _, ok := m.Cell(r, LevelNone); ok {
			t.Errorf("%s × none exists; a Tier 4–5 stat always has a level", r)
		}
	}
	fn := m.Footnotes()
	if len(fn) != 2 || !strings.Contains(fn[0], "money") || !strings.Contains(fn[1], "source of truth") {
		t.Errorf("footnotes: %q", fn)
	}
}

func TestProblems(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		name    string
		req     Request
		want    []Problem
		next    string
		message string
	}{
		{
			name: "nothing answered",
			req:  Request{},
			want: []Problem{{Question: NeedsHistory, Problem: ProblemMissing}},
			next: NeedsHistory,
		},
		{
			name: "a missing answer in the middle",
			req:  Request{Answers: answers(t, "needs_history=yes needs_past_state=no")},
			want: []Problem{{Question: FixedCadenceOK, Problem: ProblemMissing}},
			next: FixedCadenceOK,
		},
		{
			name: "every kind at once",
			req: Request{
				Answers:  answers(t, "needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=maybe hot_pth=yes loss_ok=Yes"),
				Symptoms: []string{"dual_writes", "<nope>"},
				Current:  &Current{Tier: 7, Level: "kafka"},
			},
			// money_grade has an answer, a bad one: it is reported once, as that.
			want: []Problem{
				{Question: CrossService, Problem: ProblemMissing},
				{Question: MoneyGrade, Problem: ProblemNotYesNo, Value: "maybe"},
				{Question: LossOK, Problem: ProblemNotYesNo, Value: "Yes"},
				{Question: "hot_pth", Problem: ProblemUnknown},
				{Symptom: "<nope>", Problem: ProblemUnknown},
				{Field: "current.tier", Problem: ProblemInvalid, Value: "7"},
				{Field: "current.level", Problem: ProblemInvalid, Value: "kafka"},
			},
			next:    MoneyGrade,
			message: `money_grade: not yes or no (got "maybe")`,
		},
		{
			// A bad value is a bad value even on a question that was skipped.
			name: "a bad value on a skipped question",
			req:  Request{Answers: answers(t, "needs_history=no hot_path=no loss_ok=sometimes")},
			want: []Problem{{Question: LossOK, Problem: ProblemNotYesNo, Value: "sometimes"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.Place(tc.req)
			var ae *AnswersError
			if !errors.As(err, &ae) || !errors.Is(err, ErrAnswers) {
				t.Fatalf("err = %v, want *AnswersError wrapping ErrAnswers", err)
			}
			if !slices.Equal(ae.Problems, tc.want) {
				t.Errorf("problems\n got %+v\nwant %+v", ae.Problems, tc.want)
			}
			if ae.Next != tc.next {
				t.Errorf("next %q, want %q", ae.Next, tc.next)
			}
			for _, p := range tc.want {
				name := p.Question + p.Symptom + p.Field
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
			if tc.message != "" && !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q lacks %q", err, tc.message)
			}
		})
	}
}

func TestProgress(t *testing.T) {
	e := newEngine(t)
	p := e.Progress(nil)
	if p.Next != NeedsHistory || p.Complete {
		t.Fatalf("empty: next %q complete %v", p.Next, p.Complete)
	}
	for _, st := range p.States[1:] {
		if st.State != StatePending {
			t.Errorf("empty: %s is %s, want pending", st.ID, st.State)
		}
	}
	p = e.Progress(answers(t, "needs_history=no fixed_cadence_ok=yes"))
	states := map[string]string{}
	for _, st := range p.States {
		states[st.ID] = st.State
	}
	wantStates := map[string]string{
		NeedsHistory: StateAnswered, HotPath: StateNext, FixedCadenceOK: StateSkipped,
		NeedsFlow: StateSkipped, NeedsPastState: StateSkipped, MoneyGrade: StateSkipped,
		CrossService: StateSkipped, AnonymousHighVolume: StateSkipped, LossOK: StateSkipped,
	}
	if !maps.Equal(states, wantStates) {
		t.Errorf("states %v, want %v", states, wantStates)
	}
	// Once the tier is known to be 4 or 5, cross_service applies whatever comes next,
	// so it is reported unanswered rather than pending.
	p = e.Progress(answers(t, "needs_history=yes fixed_cadence_ok=no"))
	states = map[string]string{}
	for _, st := range p.States {
		states[st.ID] = st.State
	}
	if states[NeedsPastState] != StateNext || states[CrossService] != StateUnanswered || states[MoneyGrade] != StatePending {
		t.Errorf("states %v", states)
	}
}

// TestQuestionIDs pins the public contract: the ids and their order.
func TestQuestionIDs(t *testing.T) {
	var ids []string
	for _, q := range newEngine(t).Questions() {
		ids = append(ids, q.ID)
		if q.Text == "" || q.Help == "" || q.IfYes == "" || q.IfNo == "" {
			t.Errorf("%s lacks text", q.ID)
		}
	}
	want := []string{"needs_history", "hot_path", "fixed_cadence_ok", "needs_flow", "needs_past_state",
		"money_grade", "cross_service", "anonymous_high_volume", "loss_ok"}
	if !slices.Equal(ids, want) {
		t.Errorf("ids %v, want %v", ids, want)
	}
}

func TestCurrent(t *testing.T) {
	e := newEngine(t)
	const (
		liveCount  = "needs_history=no hot_path=no"
		monthEnd   = "needs_history=yes fixed_cadence_ok=yes needs_flow=no"
		commission = "needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=yes cross_service=no anonymous_high_volume=no loss_ok=no"
		insight    = "needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=no cross_service=no anonymous_high_volume=no loss_ok=no"
		cvr        = "needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=no cross_service=no anonymous_high_volume=yes"
		replay     = "needs_history=yes fixed_cadence_ok=no needs_past_state=yes cross_service=no loss_ok=no"
	)
	for _, tc := range []struct {
		name    string
		answers string
		current Current
		kinds   []string
		matches bool
		says    string // in the warning, or in the summary when there is none
	}{
		{"event sourcing for a live count", liveCount, Current{5, LevelOutbox}, []string{WarnTooHigh}, false, "Event sourcing for a live value"},
		{"an event log for a month-end level", monthEnd, Current{4, LevelOutbox}, []string{WarnTooHigh}, false, "one tier too high"},
		{"a live query for a trend", monthEnd, Current{1, ""}, []string{WarnTooLow}, false, "Climb to Tier 3"},
		{"a live query on a hot path", "needs_history=no hot_path=yes", Current{1, ""}, []string{WarnTooLow}, false, "too slow where it is read"},
		{"a cache for a live count", liveCount, Current{2, ""}, []string{WarnTooHigh}, false, "with nothing to maintain"},
		{"an event log for a replay", replay, Current{4, LevelOutbox}, []string{WarnTooLow}, false, "not what a record looked like"},
		{"snapshots for commission", commission, Current{3, ""}, []string{WarnTooLow}, false, "loses the flow"},
		{"money on the lossy sink", commission, Current{4, LevelTelemetrySink}, []string{WarnWrongSource}, false, "never come from the telemetry sink"},
		{"money in-process", commission, Current{4, LevelInProcess}, []string{WarnDangerous}, false, "undercount"},
		{"sourcing in-process", replay, Current{5, LevelInProcess}, []string{WarnContradiction}, false, "source of truth"},
		{"sourcing on the sink", replay, Current{5, LevelTelemetrySink}, []string{WarnWrongSource}, false, "neither the record"},
		{"page views in the outbox", cvr, Current{4, LevelOutbox}, []string{WarnTooHigh}, false, "drown"},
		{"business events on the sink", insight, Current{4, LevelTelemetrySink}, []string{WarnWrongSource}, false, "never a system of record"},
		{"an idle broker", commission, Current{4, LevelBroker}, []string{WarnTooHigh}, false, "buys nothing"},
		{"in-process when loss is not fine", insight, Current{4, LevelInProcess}, []string{WarnTooLow}, false, "loses them silently"},
		{"exactly right", commission, Current{4, LevelOutbox}, nil, true, "Exactly where it belongs"},
		{"the right tier, level not said", commission, Current{4, ""}, nil, true, "Give the level"},
		{"the right tier below 4", liveCount, Current{1, LevelNone}, nil, true, "The right tier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.current
			res, err := e.Place(Request{Answers: answers(t, tc.answers), Current: &c})
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			text := res.Current.Summary
			for _, w := range res.Warnings {
				kinds = append(kinds, w.Kind)
				text += " " + w.Message
			}
			if !slices.Equal(kinds, tc.kinds) {
				t.Errorf("warnings %v, want %v: %s", kinds, tc.kinds, text)
			}
			if res.Current.Matches != tc.matches {
				t.Errorf("matches %v, want %v", res.Current.Matches, tc.matches)
			}
			if !strings.Contains(text, tc.says) {
				t.Errorf("%q lacks %q", text, tc.says)
			}
		})
	}
}

func TestSymptoms(t *testing.T) {
	e := newEngine(t)
	all := e.Symptoms()
	if len(all) < 15 {
		t.Fatalf("%d symptoms", len(all))
	}
	// The ones the issue names are there.
	ids := map[string]Symptom{}
	for _, s := range all {
		ids[s.ID] = s
	}
	for id, rung := range map[string]string{
		"soft_deletes_forever": "tier3", "rates_from_snapshots": "tier4",
		"dual_writes": "outbox", "pageviews_in_outbox": "telemetry_sink",
	} {
		if ids[id].Rung != rung {
			t.Errorf("symptom %s points at %q, want %q", id, ids[id].Rung, rung)
		}
	}
	// Ticked in any order, read in ladder order, each with what it signals.
	commission := answers(t, "needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=yes cross_service=no anonymous_high_volume=no loss_ok=no")
	res, err := e.Place(Request{Answers: commission, Symptoms: []string{"pageviews_in_outbox", "dual_writes", "rates_from_snapshots", "soft_deletes_forever", "dual_writes", "changes_table"}})
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	for _, s := range res.Symptoms {
		read = append(read, s.ID)
		if s.Signals == "" || s.LeadsTo == "" || s.Placement == "" {
			t.Errorf("%s: empty reading %+v", s.ID, s)
		}
	}
	if want := []string{"soft_deletes_forever", "rates_from_snapshots", "changes_table", "dual_writes", "pageviews_in_outbox"}; !slices.Equal(read, want) {
		t.Errorf("read %v, want %v", read, want)
	}
	placement := map[string]string{}
	for _, s := range res.Symptoms {
		placement[s.ID] = s.Placement
	}
	for id, says := range map[string]string{
		"soft_deletes_forever": "your answers go further, to Tier 4",
		"rates_from_snapshots": "the rung your answers chose",
		"changes_table":        "check needs_past_state",
		"dual_writes":          "put the events on L3 · Outbox too",
		"pageviews_in_outbox":  "your answers put this stat's events on L3 · Outbox",
	} {
		if !strings.Contains(placement[id], says) {
			t.Errorf("%s: %q lacks %q", id, placement[id], says)
		}
	}
	// Every symptom reads, whatever the rung.
	for _, a := range []string{"needs_history=no hot_path=no", "needs_history=yes fixed_cadence_ok=no needs_past_state=yes cross_service=yes loss_ok=no"} {
		var every []string
		for _, s := range all {
			every = append(every, s.ID)
		}
		res, err := e.Place(Request{Answers: answers(t, a), Symptoms: every})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Symptoms) != len(all) {
			t.Errorf("%s: %d readings for %d symptoms", a, len(res.Symptoms), len(all))
		}
	}
}

// TestCards checks the content is whole: every card has every part, every trigger
// that climbs names a real card, and symptom ids are unique and stable.
func TestCards(t *testing.T) {
	e := newEngine(t)
	cards := e.Cards()
	if len(cards) != 9 {
		t.Fatalf("%d cards, want 5 tiers + 4 levels", len(cards))
	}
	for _, c := range cards {
		for name, v := range map[string]string{"name": c.Name, "summary": c.Summary, "complexity": c.Complexity,
			"setup": c.Setup, "maintenance": c.Maintenance, "captures": c.Captures, "why": c.Why,
			"avoidance result": c.AvoidanceResult, "label": c.Label} {
			if strings.TrimSpace(v) == "" {
				t.Errorf("%s: no %s", c.ID, name)
			}
		}
		if len(c.Pains) == 0 || len(c.Avoidance) == 0 || len(c.Triggers) == 0 || len(c.Build) == 0 {
			t.Errorf("%s: pains %d, avoidance %d, triggers %d, build %d", c.ID, len(c.Pains), len(c.Avoidance), len(c.Triggers), len(c.Build))
		}
		code := 0
		for _, s := range c.Build {
			if s.Snippet != "" && s.Code == "" {
				t.Errorf("%s: step %q has an empty snippet", c.ID, s.Title)
			}
			if s.Code != "" {
				code++
				if strings.HasPrefix(s.Code, "package") {
					t.Errorf("%s: step %q shows its package clause", c.ID, s.Title)
				}
			}
		}
		if code == 0 {
			t.Errorf("%s: no code in how to build it", c.ID)
		}
	}
	// Tier 5 is the top: nothing climbs from it, and every level below the broker
	// names where to go.
	for _, tr := range e.TierCard(5).Triggers {
		if tr.Climb != "" {
			t.Errorf("tier5 climbs to %s", tr.Climb)
		}
	}
	var ids []string
	for _, s := range e.Symptoms() {
		ids = append(ids, s.ID)
	}
	sorted := slices.Clone(ids)
	sort.Strings(sorted)
	if len(slices.Compact(sorted)) != len(ids) {
		t.Errorf("duplicate symptom ids in %v", ids)
	}
}
