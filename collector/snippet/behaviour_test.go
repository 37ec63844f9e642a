package snippet

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

// testPages serves the snippet handler and, at /page/NAME, testdata/pages/NAME.html
// with t.js loaded for site NAME, posting to endpoint.
func testPages(t *testing.T, h *Handler, endpoint string) *httptest.Server {
	t.Helper()
	pages := template.Must(template.ParseGlob("testdata/pages/*.html"))
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/page/", func(w http.ResponseWriter, r *http.Request) {
		name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/page/"), "/")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		err := pages.ExecuteTemplate(w, name+".html", map[string]string{
			"Script": h.ScriptPath(), "Site": name, "Endpoint": endpoint,
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// isolatedTab opens a tab in a browser context of its own (its own storage), with
// script run in every document before the page's own.
func isolatedTab(t *testing.T, browser context.Context, script string) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	if script != "" {
		if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument,
			page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
			t.Fatalf("add a script to the tab: %v", err)
		}
	}
	// Anything thrown or rejected into the page is counted, whoever threw it.
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.pageErrors = [];
addEventListener('error', e => pageErrors.push(String(e.message)));
addEventListener('unhandledrejection', e => pageErrors.push('rejection: ' + e.reason));`,
	}); err != nil {
		t.Fatalf("add a script to the tab: %v", err)
	}
	return ctx
}

func noPageErrors(t *testing.T, tab context.Context) {
	t.Helper()
	if errs := eval[[]string](t, tab, `window.pageErrors`); len(errs) > 0 {
		t.Errorf("errors reached the page: %q", errs)
	}
}

// TestSnippetBehaviour checks the snippet's options and its API in headless Chromium,
// each case in a browser context of its own, against one real collector; then reads
// what each site left in the sink.
func TestSnippetBehaviour(t *testing.T) {
	col := startRung(t, harness.FreeAddr(t), t.TempDir())
	h := newHandler(t, Options{})
	srv := testPages(t, h, col.url("/collect"))
	browser := harness.Browser(t)
	ids := map[string][]string{} // site → the anonymous_ids its pages reported

	// The API, used well and badly: nothing throws, the good calls land, the bad ones
	// are refused by the collector and not retried.
	api := isolatedTab(t, browser, "")
	run(t, api, chromedp.Navigate(srv.URL+"/page/api?utm_source=partner"))
	waitJS(t, api, `window.rung`)
	run(t, api, chromedp.Evaluate[chromedp.Void](`
		rung.track('video_played', {video: 'tour', seconds: 42, autoplay: false})
		rung.convert('purchase', 49.5)
		rung.expose('pricing-page', 'annual')
		rung.track()
		rung.track('has spaces')
		rung.track('ok', 'not an object')
		rung.convert('refund', 'not a number')
		rung.expose('no-variant')
		history.replaceState(null, '', location.pathname)
		location.hash = '#not-a-route'
		history.pushState(null, '', '/page/api/next')
		rung.pageview()
	`))
	ids["api"] = append(ids["api"], eval[string](t, api, `rung.id()`))
	// The batch was answered (202, some refused): nothing is left to retry.
	waitJS(t, api, `localStorage.getItem('rung_q') == '[]'`)
	noPageErrors(t, api)

	// Fragment routing, on request.
	hash := isolatedTab(t, browser, "")
	run(t, hash, chromedp.Navigate(srv.URL+"/page/hash"))
	waitJS(t, hash, `window.rung`)
	run(t, hash, chromedp.Evaluate[chromedp.Void](`location.hash = '#/pricing'`))
	ids["hash"] = append(ids["hash"], eval[string](t, hash, `rung.id()`))
	noPageErrors(t, hash)

	// Cookieless: one id per tab session, none in localStorage.
	for range 2 {
		tab := isolatedTab(t, browser, "")
		run(t, tab, chromedp.Navigate(srv.URL+"/page/cookieless"))
		waitJS(t, tab, `window.rung`)
		id := eval[string](t, tab, `rung.id()`)
		if !eval[bool](t, tab, `sessionStorage.getItem('rung_id') == JSON.stringify(rung.id()) && localStorage.getItem('rung_id') == null`) {
			t.Errorf("cookieless: the id is not in sessionStorage alone")
		}
		ids["cookieless"] = append(ids["cookieless"], id)
		noPageErrors(t, tab)
	}

	// Loaded twice: one pageview.
	twice := isolatedTab(t, browser, "")
	run(t, twice, chromedp.Navigate(srv.URL+"/page/twice"))
	waitJS(t, twice, `window.rung`)
	ids["twice"] = append(ids["twice"], eval[string](t, twice, `rung.id()`))
	noPageErrors(t, twice)

	// Closed within the second t.js waits before its first request: the beacon sent on
	// pagehide carries the page view and the event.
	closing := isolatedTab(t, browser, "")
	run(t, closing, chromedp.Navigate(srv.URL+"/page/closed"))
	waitJS(t, closing, `window.rung`)
	ids["closed"] = append(ids["closed"], eval[string](t, closing, `rung.id()`))
	sent := eval[int](t, closing, `rung.track('bye'), performance.getEntriesByType('resource').filter(e => e.name.endsWith('/collect')).length`)
	if err := chromedp.Cancel(closing); err != nil {
		t.Fatalf("close the tab: %v", err)
	}
	if sent != 0 {
		t.Fatalf("t.js had sent %d requests before the tab was closed; the case needs none", sent)
	}

	// Storage that throws: the page is still counted.
	nostore := isolatedTab(t, browser, `for (const k of ['localStorage', 'sessionStorage'])
		Object.defineProperty(window, k, {get() { throw new DOMException('denied', 'SecurityError') }})`)
	run(t, nostore, chromedp.Navigate(srv.URL+"/page/nostorage"))
	waitJS(t, nostore, `window.rung`)
	ids["nostorage"] = append(ids["nostorage"], eval[string](t, nostore, `rung.id()`))
	noPageErrors(t, nostore)

	// Do Not Track, then Global Privacy Control, on a site that asks to respect them:
	// no id, nothing stored, nothing sent, not even the form's event.
	for _, signal := range []string{
		`Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})`,
		`Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})`,
	} {
		tab := isolatedTab(t, browser, signal)
		run(t, tab, chromedp.Navigate(srv.URL+"/page/dnt"))
		waitJS(t, tab, `window.rung`)
		if !eval[bool](t, tab, `navigator.doNotTrack == '1' || navigator.globalPrivacyControl === true`) {
			t.Fatalf("the browser does not send the privacy signal %s", signal)
		}
		run(t, tab, chromedp.Evaluate[chromedp.Void](`rung.track('clicked'); rung.expose('x', 'y'); history.pushState(null, '', '/page/dnt/next')`))
		if id := eval[string](t, tab, `rung.id()`); id != "" {
			t.Errorf("privacy signal: rung.id() = %q, want \"\"", id)
		}
		run(t, tab, chromedp.Click(chromedp.ID("submit")))
		waitJS(t, tab, `location.search == '?email=&anonymous_id=' && document.readyState == 'complete'`)
		if keys := eval[[]string](t, tab, `Object.keys(localStorage).filter(k => k.startsWith('rung'))`); len(keys) > 0 {
			t.Errorf("privacy signal: t.js stored %q", keys)
		}
		noPageErrors(t, tab)
	}

	want := map[string][]string{
		"api": {
			"pageview /page/api",
			"event /page/api video_played",
			"event /page/api purchase",
			"exposure /page/api pricing-page",
			"pageview /page/api/next",
			"pageview /page/api/next",
		},
		"hash":       {"pageview /page/hash", "pageview /page/hash"},
		"cookieless": {"pageview /page/cookieless", "pageview /page/cookieless"},
		"twice":      {"pageview /page/twice"},
		"closed":     {"pageview /page/closed", "event /page/closed bye"},
		"nostorage":  {"pageview /page/nostorage"},
	}
	total := 0
	for _, w := range want {
		total += len(w)
	}
	col.waitAccepted(total, 10*time.Second)
	col.stop()

	got := map[string][]schemas.Signal{}
	for _, s := range readSink(t, col.dataDir) {
		got[s.Site] = append(got[s.Site], s)
	}
	for site, sigs := range got {
		var keys []string
		for i := range sigs {
			keys = append(keys, signalKey(&sigs[i]))
			if !containsString(ids[site], sigs[i].AnonymousID) {
				t.Errorf("%s: %s has anonymous_id %q, the pages reported %q", site, signalKey(&sigs[i]), sigs[i].AnonymousID, ids[site])
			}
		}
		w := append([]string(nil), want[site]...)
		sort.Strings(keys)
		sort.Strings(w)
		if strings.Join(keys, "\n") != strings.Join(w, "\n") {
			t.Errorf("site %s: the sink holds\n  %s\nwant\n  %s", site, strings.Join(keys, "\n  "), strings.Join(w, "\n  "))
		}
	}
	for site := range want {
		if got[site] == nil {
			t.Errorf("site %s: nothing in the sink", site)
		}
	}

	// The details the keys do not show.
	for _, s := range got["api"] {
		switch s.Name {
		case "video_played":
			if s.Props != `{"video":"tour","seconds":42,"autoplay":false}` {
				t.Errorf("video_played props %s", s.Props)
			}
		case "purchase":
			if !s.HasValue || s.Value != 49.5 {
				t.Errorf("purchase value %v (set %v), want 49.5", s.Value, s.HasValue)
			}
		}
		if s.Type == schemas.TypeExposure && s.Variant != "annual" {
			t.Errorf("exposure variant %q, want annual", s.Variant)
		}
	}
	var hashURLs []string
	for _, s := range got["hash"] {
		hashURLs = append(hashURLs, strings.TrimPrefix(s.URL, srv.URL))
	}
	sort.Strings(hashURLs)
	if strings.Join(hashURLs, " ") != "/page/hash /page/hash#/pricing" {
		t.Errorf("hash routing pageviews %q, want /page/hash and /page/hash#/pricing", hashURLs)
	}
	if c := ids["cookieless"]; len(c) == 2 && c[0] == c[1] {
		t.Errorf("cookieless: two tab sessions share the id %q", c[0])
	}
}
