package place

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func newServer(t *testing.T) (*Engine, *httptest.Server) {
	t.Helper()
	e := newEngine(t)
	srv := httptest.NewServer(e.Handler(nil))
	t.Cleanup(srv.Close)
	return e, srv
}

func do(t *testing.T, method, u, ctype, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, b, err)
	}
	return v
}

func TestQuestionsAPI(t *testing.T) {
	e, srv := newServer(t)
	code, h, b := do(t, "GET", srv.URL+PathQuestions, "", "")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("GET questions: %d %s %s", code, h.Get("Content-Type"), b)
	}
	qr := decode[QuestionsResponse](t, b)
	if qr.Next != NeedsHistory || qr.Complete || len(qr.Questions) != len(e.questions) {
		t.Fatalf("questions: next %q complete %v n %d", qr.Next, qr.Complete, len(qr.Questions))
	}
	if q := qr.Questions[0]; q.ID != NeedsHistory || q.Text == "" || q.Help == "" || q.State != StateNext {
		t.Errorf("first question %+v", q)
	}

	// With answers in the query, it says what comes next, and skips what no longer applies.
	code, _, b = do(t, "GET", srv.URL+PathQuestions+"?needs_history=yes&fixed_cadence_ok=no&hot_path=yes", "", "")
	if code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	qr = decode[QuestionsResponse](t, b)
	if qr.Next != NeedsPastState {
		t.Errorf("next %q, want %s", qr.Next, NeedsPastState)
	}
	for _, q := range qr.Questions {
		if q.ID == HotPath && q.State != StateSkipped {
			t.Errorf("hot_path is %s, want skipped", q.State)
		}
	}
	code, _, b = do(t, "GET", srv.URL+PathQuestions+"?needs_history=no&hot_path=no", "", "")
	if qr = decode[QuestionsResponse](t, b); code != 200 || !qr.Complete || qr.Next != "" {
		t.Errorf("complete answers: %d %+v", code, qr)
	}

	// Bad query answers are named.
	code, _, b = do(t, "GET", srv.URL+PathQuestions+"?needs_history=perhaps&nope=yes", "", "")
	ae := decode[ErrorResponse](t, b)
	want := []Problem{{Question: NeedsHistory, Problem: ProblemNotYesNo, Value: "perhaps"}, {Question: "nope", Problem: ProblemUnknown}}
	if code != 400 || !slices.Equal(ae.Problems, want) {
		t.Errorf("bad query: %d %+v", code, ae)
	}

	if code, h, _ := do(t, "POST", srv.URL+PathQuestions, "", ""); code != 405 || h.Get("Allow") != "GET" {
		t.Errorf("POST questions: %d allow %q", code, h.Get("Allow"))
	}
}

func TestPlaceAPI(t *testing.T) {
	e, srv := newServer(t)
	const commission = `{"answers": {"needs_history": "yes", "fixed_cadence_ok": "no", "needs_past_state": "no",
		"money_grade": "yes", "cross_service": "no", "anonymous_high_volume": "no", "loss_ok": "no", "hot_path": "yes"},
		"symptoms": ["dual_writes"], "current": {"tier": 4, "level": "in_process"}}`
	code, _, b := do(t, "POST", srv.URL+PathPlace, "application/json", commission)
	if code != 200 {
		t.Fatalf("POST place: %d %s", code, b)
	}
	res := decode[Result](t, b)
	if res.Tier != 4 || res.Level != LevelOutbox || res.Verdict != Required || res.Card == nil || res.LevelCard == nil {
		t.Errorf("result: %+v", got(res))
	}
	if len(res.Symptoms) != 1 || res.Current == nil || len(res.Warnings) != 1 || res.Warnings[0].Kind != WarnDangerous {
		t.Errorf("symptoms %+v current %+v warnings %+v", res.Symptoms, res.Current, res.Warnings)
	}
	// The wire result is the engine's result.
	req, err := DecodeRequest(strings.NewReader(commission))
	if err != nil {
		t.Fatal(err)
	}
	direct, err := e.Place(req)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, _ := json.Marshal(direct)
	gotJSON, _ := json.Marshal(res)
	if string(wantJSON) != string(gotJSON) {
		t.Errorf("wire result differs from Place:\n%s\n%s", gotJSON, wantJSON)
	}
	// Snippet code travels with the card.
	if !strings.Contains(string(b), "outbox.Write") {
		t.Error("the level card's code is not in the response")
	}

	for _, tc := range []struct {
		name, ctype, body string
		code              int
		problems          []Problem
		next              string
		says              string
	}{
		{"missing, unknown and bad at once", "application/json",
			`{"answers": {"needs_history": "yes", "fixed_cadence_ok": 1, "hot_path": "yes", "cadence": "no"}}`, 400,
			[]Problem{
				{Question: FixedCadenceOK, Problem: ProblemNotYesNo, Value: "1"},
				{Question: "cadence", Problem: ProblemUnknown},
			}, FixedCadenceOK, "fixed_cadence_ok"},
		{"missing applicable answers", "application/json; charset=utf-8",
			`{"answers": {"needs_history": "yes", "fixed_cadence_ok": "no"}}`, 400,
			[]Problem{{Question: NeedsPastState, Problem: ProblemMissing}, {Question: CrossService, Problem: ProblemMissing}},
			NeedsPastState, "needs_past_state: missing"},
		{"no answers at all", "", `{}`, 400,
			[]Problem{{Question: NeedsHistory, Problem: ProblemMissing}}, NeedsHistory, "needs_history"},
		{"unknown field", "application/json", `{"answers": {}, "answer": {}}`, 400, nil, "", `unknown field "answer"`},
		{"not JSON", "application/json", `needs_history=yes`, 400, nil, "", "decode request"},
		{"trailing data", "application/json", `{"answers": {"needs_history": "no", "hot_path": "no"}} {}`, 400, nil, "", "after the JSON object"},
		{"a form", "application/x-www-form-urlencoded", `needs_history=yes`, 415, nil, "", "application/json"},
		{"too big", "application/json", `{"answers": {"needs_history": "` + strings.Repeat("x", maxBody) + `"}}`, 413, nil, "", "over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, h, b := do(t, "POST", srv.URL+PathPlace, tc.ctype, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, b)
			}
			if !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
				t.Errorf("content type %q", h.Get("Content-Type"))
			}
			ae := decode[ErrorResponse](t, b)
			if !slices.Equal(ae.Problems, tc.problems) {
				t.Errorf("problems %+v, want %+v", ae.Problems, tc.problems)
			}
			if ae.Next != tc.next {
				t.Errorf("next %q, want %q", ae.Next, tc.next)
			}
			if !strings.Contains(ae.Error, tc.says) {
				t.Errorf("error %q lacks %q", ae.Error, tc.says)
			}
		})
	}
	if code, h, _ := do(t, "GET", srv.URL+PathPlace, "", ""); code != 405 || h.Get("Allow") != "POST" {
		t.Errorf("GET place: %d allow %q", code, h.Get("Allow"))
	}
	if code, _, _ := do(t, "GET", srv.URL+"/v1/place/other", "", ""); code != 404 {
		t.Errorf("other path: %d", code)
	}
}

// postForm submits the page's form fields and returns the page.
func postForm(t *testing.T, srv *httptest.Server, form url.Values) (int, string) {
	t.Helper()
	code, _, b := do(t, "POST", srv.URL+PathPage, "application/x-www-form-urlencoded", form.Encode())
	return code, string(b)
}

func TestPageWithoutBrowser(t *testing.T) {
	_, srv := newServer(t)
	code, h, b := do(t, "GET", srv.URL+PathPage, "", "")
	page := string(b)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /place: %d %s", code, h.Get("Content-Type"))
	}
	if !strings.Contains(page, `data-question="needs_history"`) || !strings.Contains(page, `name="needs_history" value="yes"`) {
		t.Errorf("first page does not ask needs_history")
	}
	if strings.Contains(page, "<script") {
		t.Error("the page carries a script; it must work as plain forms")
	}
	if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("CSP %q", h.Get("Content-Security-Policy"))
	}

	// One answer in: the next question, the answer carried as a hidden field.
	code, page = postForm(t, srv, url.Values{"needs_history": {"no"}})
	if code != 200 || !strings.Contains(page, `data-question="hot_path"`) || !strings.Contains(page, `type="hidden" name="needs_history" value="no"`) {
		t.Errorf("second step: %d\n%s", code, page)
	}
	// All in: the result, with the rung, the ladder, the matrix and the card.
	code, page = postForm(t, srv, url.Values{"needs_history": {"no"}, "hot_path": {"no"}, "symptom": {"bigger_database"}, "current_tier": {"5"}, "current_level": {"outbox"}})
	for _, s := range []string{`data-tier="1"`, `data-level="none"`, `data-verdict="no_events_needed"`,
		`class="rung here" data-rung="tier1"`, `<tr data-row="tiers_1_3" class="here">`, `id="card-tier1"`,
		`data-kind="too_high"`, `data-symptom="bigger_database"`, `value="bigger_database" checked`, `<option value="5" selected>`} {
		if !strings.Contains(page, s) {
			t.Errorf("result page lacks %s", s)
		}
	}
	if code != 200 {
		t.Errorf("result: %d", code)
	}

	// Bad values are named, and escaped.
	code, page = postForm(t, srv, url.Values{"needs_history": {"<b>maybe</b>"}, "symptom": {`"><script>alert(1)</script>`}})
	if code != 400 || !strings.Contains(page, "needs_history: not yes or no") || strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;") {
		t.Errorf("bad form: %d\n%s", code, page)
	}
	if code, _ := postForm(t, srv, url.Values{"needs_history": {"no"}, "hot_path": {"no"}, "current_tier": {"9"}}); code != 400 {
		t.Errorf("bad current tier: %d", code)
	}
	if code, _, _ := do(t, "DELETE", srv.URL+PathPage, "", ""); code != 405 {
		t.Errorf("DELETE /place: %d", code)
	}
}
