package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/preagg/stats"
)

// visit navigates and returns what the page shows, read by a script in the page: the
// numbers as text, the way a person reads them.
func visit[T any](t *testing.T, ctx context.Context, u, js string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("navigate %s: %v", u, err)
	}
	raw, err := chromedp.Run(tctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("read %s: %v", u, err)
	}
	var v T
	if err := json.Unmarshal([]byte(raw), &v); err != nil {
		t.Fatalf("read %s: %v\n%s", u, err, raw)
	}
	return v
}

// screenshot saves a full-page PNG to $RUNG_SCREENSHOTS, or to the test's temporary
// directory, and checks it is one.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(tctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 10_000 {
		t.Fatalf("screenshot %s: %d bytes, not a PNG of a page", name, len(png))
	}
	dir := os.Getenv("RUNG_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

func count(t *testing.T, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.ReplaceAll(strings.TrimSpace(s), ",", ""), 10, 64)
	if err != nil {
		t.Fatalf("the page shows %q where a count belongs", s)
	}
	return n
}

// percent parses "12.3%" or "+4.5%" and checks it shows v (a rate) to its last digit.
func percent(t *testing.T, what, s string, v float64) {
	t.Helper()
	s = strings.TrimSpace(s)
	f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(s, "+"), "%"), 64)
	if err != nil || !strings.HasSuffix(s, "%") {
		t.Fatalf("%s: the page shows %q where a percentage belongs", what, s)
	}
	digits := len(s) - strings.IndexByte(s, '.') - 2
	if math.Abs(f-v*100) > 0.5*math.Pow(10, -float64(digits))+1e-9 {
		t.Errorf("%s: the page shows %s, the API says %.4f%%", what, s, v*100)
	}
}

// TestDashboardInChromium opens the dashboard in real headless Chromium and checks that
// the numbers on the page are the API's, that nothing a visitor sent runs as script, and
// saves screenshots of both views.
func TestDashboardInChromium(t *testing.T) {
	srv := server(t)
	ctx := harness.Browser(t)

	var api stats.LandingReport
	getJSON(t, srv.URL+"/v1/stats/landing-pages?site=shop.example", &api)
	type pageRow struct{ Path, Shown, Sessions, Converted, CVR string }
	shown := visit[struct {
		Rows            []pageRow
		Scripts         int
		Total, TotalCVR string
		Alerted         bool
	}](t, ctx, srv.URL+"/?site=shop.example", `JSON.stringify({
		rows: [...document.querySelectorAll('#landing tr.page')].map(tr => ({
			path: tr.dataset.path, shown: tr.querySelector('td.path').textContent,
			sessions: tr.querySelector('.sessions').textContent, converted: tr.querySelector('.converted').textContent,
			cvr: tr.querySelector('.cvr .value').textContent})),
		scripts: document.querySelectorAll('script').length,
		total: document.getElementById('total-sessions').textContent,
		totalCVR: document.getElementById('total-cvr').textContent,
		alerted: !!window.alerted})`)
	if shown.Scripts != 0 {
		t.Errorf("%d script elements on the page", shown.Scripts)
	}
	if len(shown.Rows) != len(api.Pages) || len(api.Pages) != 6 {
		t.Fatalf("the page shows %d landing pages, the API %d", len(shown.Rows), len(api.Pages))
	}
	for i, p := range api.Pages {
		r := shown.Rows[i]
		if r.Path != p.Path {
			t.Errorf("row %d is %q, the API's is %q", i, r.Path, p.Path)
		}
		if p.Path != "" && r.Shown != p.Path {
			t.Errorf("row %d shows %q, want the path as sent, %q", i, r.Shown, p.Path)
		}
		if count(t, r.Sessions) != p.Sessions || count(t, r.Converted) != p.Converted {
			t.Errorf("%q: the page shows %s/%s, the API %d/%d", p.Path, r.Sessions, r.Converted, p.Sessions, p.Converted)
		}
		percent(t, p.Path, r.CVR, p.CVR)
	}
	if count(t, shown.Total) != api.Sessions {
		t.Errorf("total sessions: the page shows %s, the API %d", shown.Total, api.Sessions)
	}
	percent(t, "total CVR", shown.TotalCVR, api.CVR)
	screenshot(t, ctx, "dashboard-landing-pages.png")

	var exp stats.ExperimentReport
	getJSON(t, srv.URL+"/v1/stats/experiments/hero?site=shop.example", &exp)
	type variantRow struct{ Name, Visitors, Converted, CVR, Lift, P string }
	ev := visit[struct {
		Rows    []variantRow
		Scripts int
		SRM     bool
	}](t, ctx, srv.URL+"/experiments/hero?site=shop.example", `JSON.stringify({
		rows: [...document.querySelectorAll('#variants tr.variant')].map(tr => ({
			name: tr.querySelector('.name').textContent, visitors: tr.querySelector('.visitors').textContent,
			converted: tr.querySelector('.converted').textContent, cvr: tr.querySelector('.cvr .value').textContent,
			lift: (tr.querySelector('.lift .value') || {}).textContent || '', p: (tr.querySelector('.pvalue') || {}).textContent || ''})),
		scripts: document.querySelectorAll('script').length,
		srm: !!document.getElementById('srm')})`)
	if ev.Scripts != 0 || ev.SRM {
		t.Errorf("hero page: %d scripts, SRM banner %v", ev.Scripts, ev.SRM)
	}
	if len(ev.Rows) != len(exp.Variants) || len(exp.Variants) != 3 {
		t.Fatalf("the page shows %d variants, the API %d", len(ev.Rows), len(exp.Variants))
	}
	for i, v := range exp.Variants {
		r := ev.Rows[i]
		if r.Name != v.Name || count(t, r.Visitors) != v.Visitors || count(t, r.Converted) != v.Converted {
			t.Errorf("variant %d: the page shows %+v, the API %+v", i, r, v)
		}
		percent(t, v.Name+" CVR", r.CVR, v.CVR)
		if v.Lift != nil {
			percent(t, v.Name+" lift", r.Lift, *v.Lift.Relative)
			if p, err := strconv.ParseFloat(strings.TrimSpace(r.P), 64); err != nil || math.Abs(p-*v.Lift.PValue) > 0.00005 {
				t.Errorf("%s p-value: the page shows %q, the API %v", v.Name, r.P, *v.Lift.PValue)
			}
		} else if r.Lift != "" {
			t.Errorf("the control shows a lift %q", r.Lift)
		}
	}
	screenshot(t, ctx, "dashboard-experiment.png")

	srm := visit[struct{ SRM bool }](t, ctx, srv.URL+"/experiments/checkout", `JSON.stringify({srm: !!document.getElementById('srm')})`)
	if !srm.SRM {
		t.Error("checkout's sample ratio mismatch is not on the page")
	}
	screenshot(t, ctx, "dashboard-experiment-srm.png")
}
