package place

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/rungdev/rung/internal/harness"
)

// browser starts headless Chromium for the test and returns a context whose tabs share
// it. The browser is stopped in t.Cleanup.
func browser(t *testing.T) context.Context {
	t.Helper()
	// A generous bound for the whole test, so that a wedged browser fails it rather than
	// hanging CI; not a timing threshold.
	ctx, cancel := context.WithTimeout(harness.Browser(t), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// tab opens a new tab, with JavaScript off when noJS.
func tab(t *testing.T, parent context.Context, noJS bool) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("open tab: %v", err)
	}
	if noJS {
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatalf("disable JavaScript: %v", err)
		}
	}
	return ctx
}

func attr(t *testing.T, ctx context.Context, sel, name string) (string, bool) {
	t.Helper()
	a, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(sel), name))
	if err != nil {
		t.Fatalf("read %s[%s]: %v", sel, name, err)
	}
	return a.Value, a.Exists
}

// attrs reads one attribute of every element sel matches (none is fine).
func attrs(t *testing.T, ctx context.Context, sel, name string) []string {
	t.Helper()
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(sel), chromedp.AtLeast(0)))
	if err != nil {
		t.Fatalf("find %s: %v", sel, err)
	}
	var out []string
	for _, n := range nodes {
		out = append(out, n.AttributeValue(name))
	}
	return out
}

// click clicks a submit button and waits for the page it posts to.
func click(t *testing.T, ctx context.Context, sel string) {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
	if resp.Status != 200 {
		t.Fatalf("click %s: status %d", sel, resp.Status)
	}
}

// answerThroughPage walks the questionnaire in the tab, answering each question the page
// asks from ans, and returns the questions in the order the page asked them.
func answerThroughPage(t *testing.T, ctx context.Context, base string, ans map[string]string) []string {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(base+PathPage))
	if err != nil || resp.Status != 200 {
		t.Fatalf("open %s: %v %v", PathPage, err, resp)
	}
	var asked []string
	for range 20 {
		if _, done := attr(t, ctx, "main", "data-tier"); done {
			return asked
		}
		q, ok := attr(t, ctx, "main", "data-question")
		if !ok {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
			t.Fatalf("neither a question nor a result:\n%s", html)
		}
		v, ok := ans[q]
		if !ok {
			t.Fatalf("the page asks %s, which the answers (the API's path) do not have; asked so far %v", q, asked)
		}
		asked = append(asked, q)
		click(t, ctx, "#answer-"+v)
	}
	t.Fatalf("the page never finished; asked %v", asked)
	return nil
}

// TestPageInChromium answers the questionnaire through the page, in real headless
// Chromium with JavaScript on and off, and checks that the page lands where the API
// does: same tier, level, verdict, warnings, the rung highlighted on the ladder and the
// pairing's cell marked in the matrix.
func TestPageInChromium(t *testing.T) {
	e, srv := newServer(t)
	bctx := browser(t)
	// Screenshots (full-page PNGs, slow to encode) are taken of one result page; set
	// RUNG_PLACE_SCREENSHOTS to a directory to keep them and to take one of every page.
	shots, all := os.Getenv("RUNG_PLACE_SCREENSHOTS"), true
	if shots == "" {
		shots, all = t.TempDir(), false
	}
	screenshot := func(t *testing.T, ctx context.Context, name string) {
		t.Helper()
		saveShot(t, ctx, shots, name, chromedp.FullScreenshot(100))
	}

	cases := []struct{ name, answers string }{
		{"how many contacts", "needs_history=no hot_path=no"},
		{"contacts on a hot path", "needs_history=no hot_path=yes"},
		{"contacts at each month-end", "needs_history=yes fixed_cadence_ok=yes needs_flow=no"},
		{"commission on closed deals by lead source", "needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=yes cross_service=no anonymous_high_volume=no loss_ok=no"},
		{"landing-page CVR from page views", "needs_history=yes fixed_cadence_ok=no needs_past_state=no money_grade=no cross_service=no anonymous_high_volume=yes"},
		{"regulatory replay", "needs_history=yes fixed_cadence_ok=no needs_past_state=yes cross_service=no loss_ok=no"},
		{"revenue from page views, losses fine", "needs_history=yes fixed_cadence_ok=yes needs_flow=yes needs_past_state=no money_grade=yes cross_service=yes anonymous_high_volume=yes loss_ok=yes"},
		{"sourcing on a lossy pipe", "needs_history=yes fixed_cadence_ok=no needs_past_state=yes cross_service=yes loss_ok=yes"},
	}
	for i, tc := range cases {
		// The page has no script at all, so every case runs with JavaScript off; a few
		// also run with it on, to show nothing differs.
		modes := []bool{true}
		if i%3 == 0 {
			modes = append(modes, false)
		}
		for _, noJS := range modes {
			name := tc.name
			if noJS {
				name += ", JavaScript off"
			}
			t.Run(name, func(t *testing.T) {
				ans := answers(t, tc.answers)
				// The API first, over HTTP.
				code, _, body := do(t, "POST", srv.URL+PathPlace, "application/json", fmt.Sprintf(`{"answers": %s}`, mustJSON(t, ans)))
				if code != 200 {
					t.Fatalf("API: %d %s", code, body)
				}
				api := decode[Result](t, body)

				ctx := tab(t, bctx, noJS)
				asked := answerThroughPage(t, ctx, srv.URL, ans)
				var apiPath []string
				for _, a := range api.Path {
					apiPath = append(apiPath, a.Question)
				}
				if !slices.Equal(asked, apiPath) {
					t.Errorf("the page asked %v, the API's path is %v", asked, apiPath)
				}
				tier, _ := attr(t, ctx, "main", "data-tier")
				level, _ := attr(t, ctx, "main", "data-level")
				verdict, _ := attr(t, ctx, "main", "data-verdict")
				if tier != fmt.Sprint(api.Tier) || level != string(api.Level) || verdict != string(api.Verdict) {
					t.Errorf("page: tier %s level %s verdict %s; API: %d %s %s", tier, level, verdict, api.Tier, api.Level, api.Verdict)
				}
				var apiWarn []string
				for _, w := range api.Warnings {
					apiWarn = append(apiWarn, w.Kind)
				}
				if pageWarn := attrs(t, ctx, "#warnings li", "data-kind"); !slices.Equal(pageWarn, apiWarn) {
					t.Errorf("page warnings %v, API %v", pageWarn, apiWarn)
				}
				rung, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#rung")))
				if err != nil || strings.TrimSpace(rung) != api.Rung {
					t.Errorf("rung %q (%v), API %q", rung, err, api.Rung)
				}
				// The ladder highlights exactly the rung, and the level from Tier 4 up.
				here := attrs(t, ctx, ".rung.here", "data-rung")
				wantHere := []string{TierID(api.Tier)}
				if api.Level != LevelNone {
					wantHere = append(wantHere, string(api.Level))
				}
				if !slices.Equal(here, wantHere) {
					t.Errorf("highlighted rungs %v, want %v", here, wantHere)
				}
				// The matrix marks the pairing's cell (the whole row for tiers 1–3).
				rows := attrs(t, ctx, "#matrix tr.here", "data-row")
				cells := attrs(t, ctx, "#matrix td.here", "data-level")
				wantCells := []string{string(api.Level)}
				if api.Level == LevelNone {
					wantCells = nil
					for _, l := range Levels() {
						wantCells = append(wantCells, string(l))
					}
				}
				if !slices.Equal(rows, []string{string(api.Cell.Row)}) || !slices.Equal(cells, wantCells) {
					t.Errorf("matrix marks row %v cells %v, want %s %v", rows, cells, api.Cell.Row, wantCells)
				}
				// The card, with its code.
				if ids := attrs(t, ctx, "details.card", "id"); len(ids) == 0 || ids[0] != "card-"+api.Card.ID {
					t.Errorf("cards %v, want card-%s first", ids, api.Card.ID)
				}
				if noJS && (all || i == 3) {
					screenshot(t, ctx, fmt.Sprintf("place-%d.png", i+1))
				}
			})
		}
	}

	// The optional step, through the page: tick symptoms, say where the stat lives, and
	// the page reads them as the API does — with JavaScript off.
	t.Run("symptoms and the current build, JavaScript off", func(t *testing.T) {
		ans := answers(t, "needs_history=no hot_path=no")
		ctx := tab(t, bctx, true)
		answerThroughPage(t, ctx, srv.URL, ans)
		if err := chromedp.Do(ctx,
			chromedp.Click(chromedp.CSS(`#refine-box > summary`)), // the form is folded
			chromedp.Click(chromedp.CSS(`input[name=symptom][value=soft_deletes_forever]`)),
			chromedp.Click(chromedp.CSS(`input[name=symptom][value=dual_writes]`)),
			chromedp.SetValue(chromedp.CSS(`select[name=current_tier]`), "5"),
			chromedp.SetValue(chromedp.CSS(`select[name=current_level]`), "outbox"),
		); err != nil {
			t.Fatalf("fill the form: %v", err)
		}
		click(t, ctx, "#refine-submit")
		api, err := e.Place(Request{Answers: ans, Symptoms: []string{"dual_writes", "soft_deletes_forever"}, Current: &Current{Tier: 5, Level: LevelOutbox}})
		if err != nil {
			t.Fatal(err)
		}
		var apiSyms, apiWarn []string
		for _, s := range api.Symptoms {
			apiSyms = append(apiSyms, s.ID)
		}
		for _, w := range api.Warnings {
			apiWarn = append(apiWarn, w.Kind)
		}
		if got := attrs(t, ctx, "#symptom-readings li", "data-symptom"); !slices.Equal(got, apiSyms) {
			t.Errorf("page reads symptoms %v, API %v", got, apiSyms)
		}
		if got := attrs(t, ctx, "#warnings li", "data-kind"); !slices.Equal(got, apiWarn) || !slices.Contains(got, WarnTooHigh) {
			t.Errorf("page warnings %v, API %v", got, apiWarn)
		}
		text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#warnings")))
		if err != nil || !strings.Contains(text, "Event sourcing for a live value") {
			t.Errorf("warnings text %q (%v)", text, err)
		}
		if matches, _ := attr(t, ctx, "#current", "data-matches"); matches != "false" {
			t.Errorf("current matches = %q", matches)
		}
		if all {
			screenshot(t, ctx, "place-symptoms.png")
		}
	})

	t.Run("the first question", func(t *testing.T) {
		ctx := tab(t, bctx, true)
		if _, err := chromedp.RunResponse(ctx, chromedp.Navigate(srv.URL+PathPage)); err != nil {
			t.Fatal(err)
		}
		click(t, ctx, "#answer-yes")
		if q, _ := attr(t, ctx, "main", "data-question"); q != FixedCadenceOK {
			t.Fatalf("after needs_history=yes the page asks %q", q)
		}
		if all {
			screenshot(t, ctx, "place-question.png")
		}
	})

	// "change" takes the user back to a question with the answers before it kept.
	t.Run("change an answer", func(t *testing.T) {
		ctx := tab(t, bctx, true)
		answerThroughPage(t, ctx, srv.URL, answers(t, "needs_history=yes fixed_cadence_ok=yes needs_flow=no"))
		click(t, ctx, `#answered li[data-question=fixed_cadence_ok] button`)
		if q, _ := attr(t, ctx, "main", "data-question"); q != FixedCadenceOK {
			t.Fatalf("after change, the page asks %q", q)
		}
		click(t, ctx, "#answer-no")
		click(t, ctx, "#answer-no")  // needs_past_state
		click(t, ctx, "#answer-no")  // money_grade
		click(t, ctx, "#answer-no")  // cross_service
		click(t, ctx, "#answer-yes") // anonymous_high_volume
		if lvl, _ := attr(t, ctx, "main", "data-level"); lvl != string(LevelTelemetrySink) {
			t.Errorf("level %q after changing the answer", lvl)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
