package place

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// FuzzDecodeRequest feeds arbitrary bodies through what POST /v1/place does: decoding
// never panics, and a decoded request either places, with a result that is whole, or
// fails with an *AnswersError that names at least one problem.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"answers": {"needs_history": "no", "hot_path": "no"}}`,
		`{"answers": {"needs_history": "yes", "fixed_cadence_ok": "no", "needs_past_state": "yes", "cross_service": "no", "loss_ok": "yes"}, "current": {"tier": 1}}`,
		`{"answers": {"needs_history": true, "x": null}, "symptoms": ["dual_writes", ""]}`,
		`{"answers": {}, "current": {"tier": 4, "level": "telemetry_sink"}}`,
		`{}`, `[]`, `null`, `{"answers": {"needs_history": "no"}} x`,
	} {
		f.Add(seed)
	}
	e := newEngine(f)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := DecodeRequest(strings.NewReader(body))
		if err != nil {
			return
		}
		res, err := e.Place(req)
		if err != nil {
			var ae *AnswersError
			if !errors.As(err, &ae) || len(ae.Problems) == 0 {
				t.Fatalf("Place(%q) = %v, want an *AnswersError naming problems", body, err)
			}
			return
		}
		checkResult(t, e, res)
	})
}

// FuzzPageForm does the same for the page's form.
func FuzzPageForm(f *testing.F) {
	for _, seed := range []string{
		"needs_history=no&hot_path=no",
		"needs_history=yes&fixed_cadence_ok=yes&needs_flow=no&symptom=dual_writes&current_tier=5&current_level=outbox",
		"needs_history=maybe&symptom=%3Cb%3E&current_tier=x",
		"current_tier=3&current_level=broker",
	} {
		f.Add(seed)
	}
	e := newEngine(f)
	f.Fuzz(func(t *testing.T, raw string) {
		form, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, probs := e.formRequest(form)
		if len(probs) > 0 {
			return
		}
		if !e.Progress(req.Answers).Complete {
			return
		}
		res, err := e.Place(req)
		if err != nil {
			t.Fatalf("a form that read cleanly failed to place: %v", err)
		}
		checkResult(t, e, res)
	})
}

func checkResult(t *testing.T, e *Engine, res Result) {
	t.Helper()
	if res.Tier < 1 || res.Tier > 5 || !res.Level.Valid() || (res.Tier <= 3) != (res.Level == LevelNone) {
		t.Fatalf("tier %d with level %s", res.Tier, res.Level)
	}
	if res.Card == nil || res.Verdict == "" || res.Reason == "" || len(res.Triggers) == 0 || len(res.Path) == 0 {
		t.Fatalf("incomplete result %+v", got(res))
	}
	if !res.Verdict.OK() && res.Verdict != NotApplicable {
		t.Fatalf("placed on a %s pairing", res.Verdict)
	}
	if len(res.Path)+len(res.Skipped) != len(e.questions) {
		t.Fatalf("%d answered + %d skipped", len(res.Path), len(res.Skipped))
	}
}
