package place

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// foldReport is what the page measures of itself in the browser.
type foldReport struct {
	ViewHeight  float64            `json:"viewHeight"`
	ViewWidth   float64            `json:"viewWidth"`
	ScrollWidth float64            `json:"scrollWidth"`
	PageHeight  float64            `json:"pageHeight"`
	Bottom      map[string]float64 `json:"bottom"` // selector → bottom edge; -1: absent
	Pres        int                `json:"pres"`
	LoosePres   int                `json:"loosePres"` // code not inside a <details>
	OpenCode    int                `json:"openCode"`  // code inside an open <details>
	Widest      []string           `json:"widest"`    // elements past the right edge
}

const measure = `(() => {
  const bottom = {};
  for (const sel of %s) {
    const el = document.querySelector(sel);
    bottom[sel] = el ? el.getBoundingClientRect().bottom + window.scrollY : -1;
  }
  const pres = [...document.querySelectorAll('pre')];
  return {
    viewHeight: window.innerHeight, viewWidth: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    pageHeight: document.documentElement.scrollHeight,
    bottom,
    pres: pres.length,
    loosePres: pres.filter(p => !p.closest('details')).length,
    openCode: pres.filter(p => p.closest('details') && p.closest('details').open).length,
    widest: [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
      .slice(0, 5).map(e => e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '')),
  };
})()`

// artifactDir is where the screenshots go: $RUNG_ARTIFACTS/place, or a directory under
// the system's temporary directory that outlives the test, so CI can keep them.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("RUNG_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "rung-artifacts")
	}
	dir = filepath.Join(dir, "place")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPageFirstScreen loads the question page and result pages in headless Chromium at
// a desktop (1280×800) and a phone (390×844) viewport, and checks that the first screen
// holds what a reader came for — the question and its buttons; the verdict, why, and the
// ladder — that no code listing is shown unfolded, and that nothing is wider than the
// screen. It saves a screenshot of each first screen and each whole page.
func TestPageFirstScreen(t *testing.T) {
	_, srv := newServer(t)
	bctx := browser(t)
	shots := artifactDir(t)

	pages := []struct {
		name    string
		query   string
		inFold  []string
		wantPre bool
	}{
		{"question", "", []string{"#question h1", "#answer-yes", "#answer-no", "#stat-input"}, false},
		{"tier1", "stat=open+jobs&needs_history=no&hot_path=no",
			[]string{"#rung", "#verdict", "#reason", "#why", "#ladder", "#levels", "#stat"}, true},
		{"tier4-sink", "stat=landing-page+CVR&needs_history=yes&fixed_cadence_ok=no&needs_past_state=no&money_grade=no&cross_service=no&anonymous_high_volume=yes",
			[]string{"#rung", "#verdict", "#reason", "#why", "#ladder", "#levels", "#stat"}, true},
		// The longest path there is: seven answers, and warnings.
		{"tier4-money-warnings", "stat=revenue+from+page+views&needs_history=yes&fixed_cadence_ok=yes&needs_flow=yes&needs_past_state=no&money_grade=yes&cross_service=yes&anonymous_high_volume=yes&loss_ok=yes",
			[]string{"#rung", "#verdict", "#reason", "#why", "#ladder", "#levels", "#warning-note"}, true},
	}
	for _, vp := range []struct {
		name string
		w, h int64
	}{{"1280", 1280, 800}, {"390", 390, 844}} {
		for _, pg := range pages {
			t.Run(pg.name+"@"+vp.name, func(t *testing.T) {
				ctx := tab(t, bctx, true)
				u := srv.URL + PathPage
				if pg.query != "" {
					q, err := url.ParseQuery(pg.query)
					if err != nil {
						t.Fatal(err)
					}
					u += "?" + q.Encode()
				}
				if err := chromedp.Do(ctx, chromedp.EmulateViewport(vp.w, vp.h)); err != nil {
					t.Fatal(err)
				}
				resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(u))
				if err != nil || resp.Status != 200 {
					t.Fatalf("open %s: %v %v", u, err, resp)
				}
				sels := append([]string{}, pg.inFold...)
				js := fmt.Sprintf(measure, mustJSON(t, sels))
				rep, err := chromedp.Run(ctx, chromedp.Evaluate[foldReport](js))
				if err != nil {
					t.Fatalf("measure: %v", err)
				}
				for _, sel := range sels {
					b := rep.Bottom[sel]
					if b < 0 {
						t.Errorf("%s is not on the page", sel)
					} else if b > rep.ViewHeight {
						t.Errorf("%s ends at %.0f px, below the first screen (%.0f px)", sel, b, rep.ViewHeight)
					}
				}
				if rep.ScrollWidth > rep.ViewWidth {
					t.Errorf("the page is %.0f px wide in a %.0f px viewport: %v", rep.ScrollWidth, rep.ViewWidth, rep.Widest)
				}
				if pg.wantPre && rep.Pres == 0 {
					t.Errorf("no code on the result page")
				}
				if rep.LoosePres > 0 || rep.OpenCode > 0 {
					t.Errorf("of %d code listings, %d are outside a <details> and %d are unfolded", rep.Pres, rep.LoosePres, rep.OpenCode)
				}
				t.Logf("page %.0f px tall, %d code listings folded", rep.PageHeight, rep.Pres)
				saveShot(t, ctx, shots, pg.name+"-"+vp.name+"-first-screen.png", chromedp.CaptureScreenshot())
				saveShot(t, ctx, shots, pg.name+"-"+vp.name+"-full.png", chromedp.FullScreenshot(100))
			})
		}
	}
}

// saveShot takes a screenshot with act, checks it is a PNG, and writes it to dir/name.
func saveShot(t *testing.T, ctx context.Context, dir, name string, act chromedp.Action[[]byte]) {
	t.Helper()
	png, err := chromedp.Run(ctx, act)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s is not a PNG", name)
	}
	f := filepath.Join(dir, name)
	if err := os.WriteFile(f, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", f)
}
