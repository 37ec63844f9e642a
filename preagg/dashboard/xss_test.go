package dashboard

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/preagg/stats"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/sqlite"
)

// xssPayloads are what a hostile visitor puts in utm values: each would run a script if
// it reached the page unescaped, or were followed as a link.
var xssPayloads = []string{
	`"><script>alert(1)</script>`,
	`<img src=x onerror=alert(1)>`,
	`javascript:alert(1)`,
	`'><svg onload=alert(1)>`,
	`</textarea><iframe src="javascript:alert(1)"></iframe>`,
}

// dialogs counts the JavaScript dialogs (alert, confirm, prompt) the browser opens, and
// dismisses each so the page goes on. Its goroutine ends with ctx.
func dialogs(t *testing.T, ctx context.Context) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	opened := make(chan struct{}, 16)
	// The listener runs in the tab's read loop: it only counts and signals.
	if err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			n.Add(1)
			select {
			case opened <- struct{}{}:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-opened:
			}
			chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{})
				return err
			}))
		}
	}()
	return &n
}

// TestUTMPayloadsInChromium stores landing cells whose utm_source, utm_medium and
// utm_campaign are script payloads, filters the dashboard by each (the values come back
// in the filter form and in every sort link), and checks in headless Chromium that the
// filter matched the stored row (the payload went through storage and the query
// literally), that no script ran, and that each value is shown as the text it is. Then
// the same for pageviews whose referrers are the payloads, on the page's referrers.
func TestUTMPayloadsInChromium(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	utm := func(i int) [3]string {
		n := len(xssPayloads)
		return [3]string{xssPayloads[i%n], xssPayloads[(i+1)%n], xssPayloads[(i+2)%n]}
	}
	b := &sink.Batch{}
	for i := range xssPayloads {
		u := utm(i)
		b.Landing = append(b.Landing, sink.LandingCell{LandingKey: sink.LandingKey{Site: "xss.example", HourMs: base.Add(5 * time.Hour).UnixMilli(),
			LandingPath: "/offer", UTMSource: u[0], UTMMedium: u[1], UTMCampaign: u[2]},
			Cell: uint64(i + 1), Sessions: int64(100 + i), Converted: int64(i), Version: 1})
	}
	// Pageviews of /offer whose referrers are the payloads: payload i comes with i+1.
	for i, p := range xssPayloads {
		for j := 0; j <= i; j++ {
			b.Signals = append(b.Signals, schemas.Signal{Type: schemas.TypePageview, Site: "xss.example",
				ReceivedAt: base.Add(5*time.Hour).UnixMilli() + int64(len(b.Signals)), AnonymousID: fmt.Sprintf("v-%d-%d", i, j),
				EventID: fmt.Sprintf("e-%d-%d", i, j), URL: "https://xss.example/offer", Path: "/offer", Referrer: p})
		}
	}
	if err := st.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	d := New(stats.NewQueries(st, stats.Options{Now: func() time.Time { return now }}),
		slog.New(slog.NewTextHandler(io.Discard, nil)), Options{Now: func() time.Time { return now }})
	mux := http.NewServeMux()
	mux.Handle("/v1/stats/", d.API())
	mux.Handle("/", d.Pages())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx := harness.Browser(t)
	opened := dialogs(t, ctx)
	// The detector works: a page that does call alert is seen to.
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.Navigate(`data:text/html,<p>control</p><img src=x onerror="alert(1)">`)); err != nil {
		t.Fatalf("control page: %v", err)
	}
	for opened.Load() == 0 && tctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	if got := opened.Load(); got != 1 {
		t.Fatalf("the control page's alert opened %d dialogs, want 1: the detector is broken", got)
	}
	opened.Store(0)

	for i := range xssPayloads {
		u := utm(i)
		q := url.Values{"site": {"xss.example"}, "utm_source": {u[0]}, "utm_medium": {u[1]}, "utm_campaign": {u[2]}}
		shown := visit[struct {
			Sessions, Source, Medium, Campaign string
			Scripts, Frames, Images, Handlers  int
			Links                              []string
		}](t, ctx, srv.URL+"/?"+q.Encode(), `JSON.stringify({
			sessions: document.getElementById('total-sessions').textContent,
			source: document.querySelector('input[name=utm_source]').value,
			medium: document.querySelector('input[name=utm_medium]').value,
			campaign: document.querySelector('input[name=utm_campaign]').value,
			scripts: document.querySelectorAll('script').length,
			frames: document.querySelectorAll('iframe, frame, object, embed').length,
			images: document.querySelectorAll('img').length,
			handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
			links: [...document.querySelectorAll('a[href]')].map(a => a.href)})`)
		if want := 100 + i; count(t, shown.Sessions) != int64(want) {
			t.Errorf("utm %q: the page shows %s sessions, want the stored row's %d", u, shown.Sessions, want)
		}
		if got := [3]string{shown.Source, shown.Medium, shown.Campaign}; got != u {
			t.Errorf("the filter form shows %q, want the values as sent, %q", got, u)
		}
		if shown.Scripts+shown.Frames+shown.Images+shown.Handlers != 0 {
			t.Errorf("utm %q: %d scripts, %d frames, %d images, %d elements with event handlers on the page",
				u, shown.Scripts, shown.Frames, shown.Images, shown.Handlers)
		}
		for _, l := range shown.Links {
			if !strings.HasPrefix(l, srv.URL+"/") {
				t.Errorf("utm %q: a link to %q, outside the dashboard", u, l)
			}
		}
		if len(shown.Links) < 5 {
			t.Errorf("utm %q: %d links on the page, want the sort links at least", u, len(shown.Links))
		}
	}
	screenshot(t, ctx, "dashboard-utm-payloads.png")

	// The landing page links /offer to its referrers; there they are, as text.
	var api stats.ReferrerReport
	getJSON(t, srv.URL+"/v1/stats/referrers?site=xss.example&path=/offer", &api)
	refs := visit[struct {
		Link                              string
		Rows                              [][2]string
		Scripts, Frames, Images, Handlers int
		Links                             []string
	}](t, ctx, srv.URL+"/?site=xss.example", `JSON.stringify({link: (document.querySelector('#landing tr.page td.path a') || {}).href || ''})`)
	if refs.Link != srv.URL+"/referrers?path=%2Foffer&site=xss.example" {
		t.Fatalf("the landing page links /offer to %q, want its referrers", refs.Link)
	}
	refs = visit[struct {
		Link                              string
		Rows                              [][2]string
		Scripts, Frames, Images, Handlers int
		Links                             []string
	}](t, ctx, refs.Link, `JSON.stringify({
		rows: [...document.querySelectorAll('#referrers tr.referrer')].map(tr => [tr.querySelector('.ref').textContent, tr.querySelector('.pageviews').textContent]),
		scripts: document.querySelectorAll('script').length,
		frames: document.querySelectorAll('iframe, frame, object, embed').length,
		images: document.querySelectorAll('img').length,
		handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
		links: [...document.querySelectorAll('a[href]')].map(a => a.href)})`)
	if len(refs.Rows) != len(xssPayloads) || len(api.Referrers) != len(xssPayloads) {
		t.Fatalf("the page shows %d referrers, the API %d, want %d", len(refs.Rows), len(api.Referrers), len(xssPayloads))
	}
	for i, row := range refs.Rows {
		p := xssPayloads[len(xssPayloads)-1-i] // most pageviews first
		if row[0] != p || count(t, row[1]) != int64(len(xssPayloads)-i) || api.Referrers[i].Referrer != p {
			t.Errorf("referrer row %d shows %q, %s pageviews; want %q, %d (the API: %+v)", i, row[0], row[1], p, len(xssPayloads)-i, api.Referrers[i])
		}
	}
	if refs.Scripts+refs.Frames+refs.Images+refs.Handlers != 0 {
		t.Errorf("referrers page: %d scripts, %d frames, %d images, %d elements with event handlers", refs.Scripts, refs.Frames, refs.Images, refs.Handlers)
	}
	for _, l := range refs.Links {
		if !strings.HasPrefix(l, srv.URL+"/") {
			t.Errorf("referrers page: a link to %q, outside the dashboard", l)
		}
	}
	if got := opened.Load(); got != 0 {
		t.Errorf("%d dialogs opened: a payload ran", got)
	}
	screenshot(t, ctx, "dashboard-referrer-payloads.png")
}

func TestReferrersAPI(t *testing.T) {
	srv := server(t)
	for _, tc := range []struct {
		query string
		code  int
	}{
		{"site=shop.example&path=/pricing", 200},
		{"site=shop.example", 400},
		{"path=/pricing&limit=0", 200},
		{"path=/pricing&limit=5000", 400},
		{"path=/pricing&from=-1d&to=-2d", 400},
		{"path=' OR 1=1 --", 200},
	} {
		code, _, body := get(t, srv.URL+"/v1/stats/referrers?"+strings.ReplaceAll(tc.query, " ", "%20"))
		if code != tc.code {
			t.Errorf("referrers?%s: %d %s, want %d", tc.query, code, body, tc.code)
		}
	}
	code, _, body := get(t, srv.URL+"/referrers?site=shop.example")
	if code != 400 || !strings.Contains(string(body), "path: required") {
		t.Errorf("referrers page without a path: %d %s", code, body)
	}
}
