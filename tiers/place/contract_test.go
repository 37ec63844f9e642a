package place

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/contract")

// TestPlaceContract pins POST /v1/place as a caller sees it: each request in the table
// and the status and body it is answered with, in testdata/contract/<name>.txt.
// go test ./tiers/place -run TestPlaceContract -update rewrites the files; read the
// diff, since every change there is a change of the public API.
func TestPlaceContract(t *testing.T) {
	_, srv := newServer(t)
	const tier1 = `"needs_history": "no", "hot_path": "no"`
	for _, tc := range []struct{ name, ctype, body string }{
		{"tier1-yes-no", "application/json", `{"answers": {` + tier1 + `}}`},
		{"tier1-true-false", "application/json", `{"answers": {"needs_history": false, "hot_path": false}}`},
		{"tier1-named-stat", "application/json", `{"stat": "open jobs", "answers": {` + tier1 + `}}`},
		{"tier1-ignored-answers", "application/json",
			`{"answers": {` + tier1 + `, "money_grade": true, "loss_ok": "no"}}`},
		{"tier3-ignored-after-cadence", "application/json",
			`{"answers": {"needs_history": "yes", "fixed_cadence_ok": "yes", "needs_flow": "no", "hot_path": "yes"}}`},
		{"tier4-pageviews-on-the-sink", "application/json",
			`{"stat": "landing-page CVR", "answers": {"needs_history": true, "fixed_cadence_ok": false, "needs_past_state": false, "money_grade": false, "cross_service": false, "anonymous_high_volume": true}}`},
		{"tier4-money-on-the-outbox", "application/json",
			`{"stat": "commission by lead source", "answers": {"needs_history": "yes", "fixed_cadence_ok": "no", "needs_past_state": "no", "money_grade": "yes", "cross_service": "no", "anonymous_high_volume": "no", "loss_ok": "no"}, "current": {"tier": 3}}`},
		{"empty-body", "application/json", ``},
		{"whitespace-body", "application/json", "  \n"},
		{"no-answers", "application/json", `{}`},
		{"null-answer", "application/json", `{"answers": {"needs_history": null}}`},
		{"number-answer", "application/json", `{"answers": {"needs_history": 1}}`},
		{"unknown-question", "application/json", `{"answers": {` + tier1 + `, "cadence": "no"}}`},
		{"unknown-field", "application/json", `{"answers": {}, "answer": {}}`},
		{"stat-too-long", "application/json", `{"stat": "` + strings.Repeat("x", maxStat+1) + `", "answers": {` + tier1 + `}}`},
		{"bad-current", "application/json", `{"answers": {` + tier1 + `}, "current": {"tier": 9, "level": "kafka"}}`},
		{"form-body", "application/x-www-form-urlencoded", `needs_history=no&hot_path=no`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, h, body := do(t, "POST", srv.URL+PathPlace, tc.ctype, tc.body)
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("content type %q", ct)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "POST %s\nContent-Type: %s\n\n%s\n-- response --\n%d\n%s", PathPlace, tc.ctype, tc.body, code, body)
			got := b.String()
			path := filepath.Join("testdata", "contract", tc.name+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
			}
		})
	}
}

// TestCodeFitsTheStat: a stat counted from page views on the telemetry sink is shown
// page-view code, on the API and on the page, never the deal_closed transaction that
// fits business events; a money-grade stat on the outbox is shown deal_closed.
func TestCodeFitsTheStat(t *testing.T) {
	_, srv := newServer(t)
	for _, tc := range []struct {
		name, query   string
		want, wantNot string
	}{
		{"page views on the sink", "needs_history=yes&fixed_cadence_ok=no&needs_past_state=no&money_grade=no&cross_service=no&anonymous_high_volume=yes",
			"pageview.v1", "deal_closed"},
		{"money on the outbox", "needs_history=yes&fixed_cadence_ok=no&needs_past_state=no&money_grade=yes&cross_service=no&anonymous_high_volume=no&loss_ok=no",
			"deal_closed", "pageview.v1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			ans := map[string]string{}
			for k := range q {
				ans[k] = q.Get(k)
			}
			code, _, api := do(t, "POST", srv.URL+PathPlace, "application/json", `{"answers": `+mustJSON(t, ans)+`}`)
			if code != 200 {
				t.Fatalf("API: %d %s", code, api)
			}
			code, _, page := do(t, "GET", srv.URL+PathPage+"?"+tc.query, "", "")
			if code != 200 {
				t.Fatalf("page: %d", code)
			}
			for what, body := range map[string]string{"API": string(api), "page": string(page)} {
				if !strings.Contains(body, tc.want) {
					t.Errorf("the %s's code lacks %s", what, tc.want)
				}
				if strings.Contains(body, tc.wantNot) {
					t.Errorf("the %s shows %s, which does not fit the stat", what, tc.wantNot)
				}
			}
		})
	}
}

// TestGlossary: the page explains the words it uses, on the question and on the result.
func TestGlossary(t *testing.T) {
	_, srv := newServer(t)
	for _, q := range []string{"", "?needs_history=no&hot_path=no"} {
		code, _, page := do(t, "GET", srv.URL+PathPage+q, "", "")
		if code != 200 {
			t.Fatalf("GET %s: %d", q, code)
		}
		_, gloss, ok := strings.Cut(string(page), `id="glossary"`)
		if !ok {
			t.Fatalf("GET /place%s: no glossary", q)
		}
		for _, term := range []string{"<dt>rung</dt>", "<dt>tier (1–5)</dt>", "<dt>event level (L0–L4)</dt>", "<dt>pairing</dt>", "<dt>verdict</dt>", "<dt>floor</dt>"} {
			if !strings.Contains(gloss, term) {
				t.Errorf("GET /place%s: the glossary lacks %s", q, term)
			}
		}
	}
}
