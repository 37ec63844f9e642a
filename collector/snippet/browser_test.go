package snippet

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/sqlite"
)

// eventIDRe is what t.js makes: the time in ms, then 128 random bits.
var eventIDRe = regexp.MustCompile(`^\d{13}(-\d{1,10}){4}$`)

// The demo journey a visitor takes: the landing page with utm parameters, reached from
// a link on another site; two single-page navigations; the headline experiment; the
// lead form; the page the form posts to. want lists the signals it must leave, by
// type, path and name or experiment.
var journeySignals = []string{
	"pageview /demo/",
	"exposure /demo/ hero-copy",
	"pageview /demo/pricing",
	"pageview /demo/signup",
	"event /demo/signup form_submitted",
	"pageview /demo/lead",
}

const landingQuery = "?utm_source=newsletter&utm_medium=email&utm_campaign=spring"

func signalKey(s *schemas.Signal) string {
	k := s.Type.String() + " " + s.Path
	switch s.Type {
	case schemas.TypeEvent:
		k += " " + s.Name
	case schemas.TypeExposure:
		k += " " + s.Experiment
	}
	return k
}

// visit is what the browser saw of the journey.
type visit struct {
	anonymousID string
	variant     string
	referrer    string // the page that linked to the landing page
	leadField   string // the anonymous_id the lead page received
}

// takeJourney walks the demo at base (an origin serving the snippet handler) in tab.
// It stops on the lead page, the tab still open. landed, when not nil, runs once the
// landing page is shown.
func takeJourney(t *testing.T, tab context.Context, base string, landed func()) visit {
	t.Helper()
	landing := base + "/demo/" + landingQuery
	// Another site links to the landing page, as a newsletter or a search result does.
	ref := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>newsletter</title><a id="go" href="%s">Larkspur</a>`, html.EscapeString(landing))
	}))
	t.Cleanup(ref.Close)
	run(t, tab, chromedp.Navigate(ref.URL), chromedp.Click(chromedp.ID("go")))
	waitJS(t, tab, `location.pathname == '/demo/' && window.rung && document.getElementById('variant').textContent != '—'`)
	v := visit{
		anonymousID: eval[string](t, tab, `rung.id()`),
		variant:     eval[string](t, tab, `document.getElementById('variant').textContent`),
		referrer:    ref.URL + "/",
	}
	if got := eval[string](t, tab, `document.getElementById('anon').textContent`); got != v.anonymousID {
		t.Fatalf("the page shows anonymous_id %q, rung.id() says %q", got, v.anonymousID)
	}
	screenshot(t, tab, "demo-landing.png")
	if landed != nil {
		landed()
	}

	// Single-page navigations: the document stays, the marker with it.
	run(t, tab, chromedp.Evaluate[chromedp.Void](`window.sameDocument = true`))
	run(t, tab, chromedp.Click(chromedp.ID("see-pricing")))
	waitJS(t, tab, `location.pathname == '/demo/pricing' && document.body.dataset.page == 'pricing'`)
	run(t, tab, chromedp.Click(chromedp.ID("start-trial")))
	waitJS(t, tab, `location.pathname == '/demo/signup' && document.body.dataset.page == 'signup'`)
	if !eval[bool](t, tab, `window.sameDocument === true`) {
		t.Fatal("the demo reloaded the page on a single-page navigation")
	}
	screenshot(t, tab, "demo-signup.png")

	run(t, tab,
		chromedp.SendKeys(chromedp.CSS(`input[name=name]`), "Ada Lovelace"),
		chromedp.SendKeys(chromedp.CSS(`input[name=email]`), "ada@example.com"),
		chromedp.Click(chromedp.ID("submit")),
	)
	waitJS(t, tab, `location.pathname == '/demo/lead' && document.querySelector('td[data-field=anonymous_id]')`)
	v.leadField = eval[string](t, tab, `document.querySelector('td[data-field=anonymous_id]').textContent`)
	screenshot(t, tab, "demo-lead.png")
	return v
}

// checkJourney checks that the sink holds exactly the journey's signals, all of one
// visitor, with the values the browser saw.
func checkJourney(t *testing.T, sigs []schemas.Signal, v visit, base string) {
	t.Helper()
	if v.leadField != v.anonymousID {
		t.Errorf("the lead form posted anonymous_id %q, the visitor is %q", v.leadField, v.anonymousID)
	}
	var got []string
	byKey := map[string]*schemas.Signal{}
	ids := map[string]bool{}
	for i := range sigs {
		s := &sigs[i]
		got = append(got, signalKey(s))
		byKey[signalKey(s)] = s
		if s.AnonymousID != v.anonymousID {
			t.Errorf("%s: anonymous_id %q, want the visitor's %q", signalKey(s), s.AnonymousID, v.anonymousID)
		}
		if s.Site != "demo" {
			t.Errorf("%s: site %q, want demo", signalKey(s), s.Site)
		}
		if !eventIDRe.MatchString(s.EventID) || ids[s.EventID] {
			t.Errorf("%s: event_id %q is malformed or repeated", signalKey(s), s.EventID)
		}
		ids[s.EventID] = true
	}
	want := append([]string(nil), journeySignals...)
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the sink holds:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	land := byKey["pageview /demo/"]
	if land.UTMSource != "newsletter" || land.UTMMedium != "email" || land.UTMCampaign != "spring" {
		t.Errorf("landing utm = %q/%q/%q, want newsletter/email/spring", land.UTMSource, land.UTMMedium, land.UTMCampaign)
	}
	if land.URL != base+"/demo/"+landingQuery {
		t.Errorf("landing url %q", land.URL)
	}
	if land.Referrer != v.referrer {
		t.Errorf("landing referrer %q, want the linking page %q", land.Referrer, v.referrer)
	}
	if exp := byKey["exposure /demo/ hero-copy"]; exp.Variant != v.variant {
		t.Errorf("exposure variant %q, the page showed %q", exp.Variant, v.variant)
	}
	if p := byKey["pageview /demo/pricing"]; p.Referrer != land.URL {
		t.Errorf("pricing referrer %q, want the landing url %q", p.Referrer, land.URL)
	}
	if ev := byKey["event /demo/signup form_submitted"]; ev.Props != `{"form":"lead"}` {
		t.Errorf("form_submitted props %s, want {\"form\":\"lead\"}", ev.Props)
	}
	if p := byKey["pageview /demo/lead"]; p.Referrer != base+"/demo/signup" {
		t.Errorf("lead page referrer %q, want %s/demo/signup", p.Referrer, base)
	}
}

// TestDemoJourneyCrossOrigin serves the demo and t.js from one origin and collects on
// another, as a site that adds rung's snippet does: sendBeacon and fetch post
// text/plain, so no preflight is needed.
func TestDemoJourneyCrossOrigin(t *testing.T) {
	col := startRung(t, harness.FreeAddr(t), t.TempDir())
	site := httptest.NewServer(newHandler(t, Options{Site: "demo", Endpoint: col.url("/collect")}))
	t.Cleanup(site.Close)

	browser := harness.Browser(t)
	tab, closeTab := newTab(t, browser)
	v := takeJourney(t, tab, site.URL, nil)
	closeTab()

	col.waitAccepted(len(journeySignals), 10*time.Second)
	col.stop()
	checkJourney(t, readSink(t, col.dataDir), v, site.URL)
}

// TestDemoJourneyServedByRung walks the demo as `rung serve` serves it, t.js and pages
// from the collector's own origin, and checks how rung serves t.js on the wire.
func TestDemoJourneyServedByRung(t *testing.T) {
	col := startRung(t, harness.FreeAddr(t), t.TempDir())
	checkServedScript(t, col)

	browser := harness.Browser(t)
	tab, closeTab := newTab(t, browser)
	v := takeJourney(t, tab, col.url(""), nil)
	closeTab()

	col.waitAccepted(len(journeySignals), 10*time.Second)
	col.stop()
	checkJourney(t, readSink(t, col.dataDir), v, col.url(""))
}

// checkServedScript fetches /t.js and the versioned path the demo names from rung.
func checkServedScript(t *testing.T, col *rung) {
	t.Helper()
	page := httpGet(t, col.url("/demo/"), nil)
	m := regexp.MustCompile(`src="(/t\.[0-9a-f]{12}\.js)"`).FindStringSubmatch(string(page.body))
	if m == nil {
		t.Fatalf("/demo/ names no versioned t.js:\n%s", page.body)
	}
	plain := httpGet(t, col.url("/t.js"), map[string]string{"Accept-Encoding": "identity"})
	gz := httpGet(t, col.url(m[1]), map[string]string{"Accept-Encoding": "gzip"})
	for _, c := range []struct {
		what, got, want string
	}{
		{"/t.js Cache-Control", plain.header.Get("Cache-Control"), cacheScript},
		{"/t.js Content-Type", plain.header.Get("Content-Type"), "text/javascript; charset=utf-8"},
		{"/t.js Content-Encoding", plain.header.Get("Content-Encoding"), ""},
		{m[1] + " Cache-Control", gz.header.Get("Cache-Control"), cacheVersioned},
		{m[1] + " Content-Encoding", gz.header.Get("Content-Encoding"), "gzip"},
		{m[1] + " Vary", gz.header.Get("Vary"), "Accept-Encoding"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if !bytes.HasPrefix(plain.body, []byte("((w,d)=>{")) {
		t.Errorf("/t.js does not start as the minified t.js: %.40q", plain.body)
	}
	t.Logf("rung serves t.js: %d bytes, %d gzipped", len(plain.body), len(gz.body))
	if len(gz.body) > maxGzipped || len(gz.body) >= len(plain.body) {
		t.Errorf("%s: %d bytes gzipped on the wire, want at most %d and less than %d", m[1], len(gz.body), maxGzipped, len(plain.body))
	}
}

type response struct {
	header http.Header
	body   []byte
}

// httpGet fetches url without the client's transparent gzip, so the test sees the
// bytes rung sent.
func httpGet(t *testing.T, url string, hdr map[string]string) response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET %s: %s (%v)", url, res.Status, err)
	}
	return response{res.Header, b}
}

// TestQueuedWhileCollectorDown takes the collector down, walks the demo, closes the
// page, brings the collector back on the same address and store, and opens the site
// again: the signals t.js kept in localStorage arrive, each once, with the event_ids
// they were made with.
func TestQueuedWhileCollectorDown(t *testing.T) {
	addr, data := harness.FreeAddr(t), t.TempDir()
	col := startRung(t, addr, data)
	site := httptest.NewServer(newHandler(t, Options{Site: "demo", Endpoint: col.url("/collect")}))
	t.Cleanup(site.Close)
	col.stop()

	browser := harness.Browser(t)
	tab, closeTab := newTab(t, browser)
	// t.js learns the collector is down when its first request fails, a second after
	// the landing; it cannot know sooner, and beacons sent before then are lost with it.
	const stored = `JSON.parse(localStorage.getItem('rung_q') || '[]')`
	v := takeJourney(t, tab, site.URL, func() { waitJS(t, tab, stored+`.length == 2`) })
	// Every signal of the journey is now stored, none sent.
	waitJS(t, tab, stored+`.length == 6`)
	queued := eval[[]string](t, tab, stored+`.map(s => s.event_id)`)
	// What t.js stored is exactly what it sends: each one valid by the schema.
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range eval[[]string](t, tab, stored+`.map(s => JSON.stringify(s))`) {
		if err := reg.Validate("signal.v2", []byte(raw)); err != nil {
			t.Errorf("t.js made an invalid signal: %v\n%s", err, raw)
		}
	}
	closeTab()

	col = startRung(t, addr, data)
	if n, err := col.accepted(); err != nil || n != 0 {
		t.Fatalf("the restarted collector accepted %d signals (%v) before the site was opened again", n, err)
	}
	tab2, closeTab2 := newTab(t, browser)
	run(t, tab2, chromedp.Navigate(site.URL+"/demo/pricing"))
	// The six queued, and this page's pageview. A send that fails is retried after 1, 2,
	// 4, 8, 16 s...: the bound leaves room for several on a loaded machine.
	col.waitAccepted(len(journeySignals)+1, 60*time.Second)
	waitJS(t, tab2, stored+`.length == 0`)
	closeTab2()
	col.stop()

	sigs := readSink(t, data)
	var journey []schemas.Signal
	for _, s := range sigs {
		if !containsString(queued, s.EventID) {
			if signalKey(&s) != "pageview /demo/pricing" || s.Referrer != "" {
				t.Errorf("unexpected signal %s (referrer %q)", signalKey(&s), s.Referrer)
			}
			continue
		}
		journey = append(journey, s)
	}
	checkJourney(t, journey, v, site.URL)
	if len(sigs) != len(journeySignals)+1 {
		t.Errorf("the sink holds %d signals, want %d", len(sigs), len(journeySignals)+1)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// screenshot saves a PNG of the page to $RUNG_SCREENSHOTS, or to the test's temporary
// directory, and checks it is one.
func screenshot(t *testing.T, tab context.Context, name string) {
	t.Helper()
	png := runValue(t, tab, chromedp.CaptureScreenshot())
	if !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 10_000 {
		t.Fatalf("screenshot %s: %d bytes, not a PNG of a page", name, len(png))
	}
	dir := os.Getenv("RUNG_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReplayMakesLiveSessions walks two pages with a pause longer than the session
// timeout between them, once with the collector up and once with it down, so that t.js
// keeps every signal and replays them later in one request. rung makes the same
// sessions both times, one landing on /demo/ and one on /demo/pricing: the replay
// carries when each signal was made (ts and sent_at), not when it arrived.
func TestReplayMakesLiveSessions(t *testing.T) {
	const timeout = time.Minute // the shortest rung serve takes
	const stored = `JSON.parse(localStorage.getItem('rung_q') || '[]')`
	browser := harness.Browser(t)
	for _, down := range []bool{false, true} {
		name := "live"
		if down {
			name = "replayed"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel() // both wait out the timeout
			addr, data := harness.FreeAddr(t), t.TempDir()
			args := []string{"--session-timeout", timeout.String()}
			col := startRung(t, addr, data, args...)
			site := httptest.NewServer(newHandler(t, Options{Site: "demo", Endpoint: col.url("/collect")}))
			t.Cleanup(site.Close)
			if down {
				col.stop()
			}
			// Made, and then either delivered or stored: n signals so far.
			made := func(tab context.Context, n int) {
				if down {
					waitJS(t, tab, fmt.Sprintf("%s.length == %d", stored, n))
				} else {
					col.waitAccepted(n, 30*time.Second)
				}
			}
			// A browser's user agent: headless Chrome's own is a bot's, counted nowhere.
			asBrowser := func(tab context.Context) {
				if _, err := chromedp.Call(tab, emulation.SetUserAgentOverride,
					emulation.SetUserAgentOverrideParams{UserAgent: harness.BrowserUA}); err != nil {
					t.Fatalf("set the user agent: %v", err)
				}
			}
			tab, closeTab := newTab(t, browser)
			asBrowser(tab)
			run(t, tab, chromedp.Navigate(site.URL+"/demo/"))
			waitJS(t, tab, `window.rung && document.getElementById('variant').textContent != '—'`)
			anon := eval[string](t, tab, `rung.id()`)
			made(tab, 2) // the pageview and the exposure
			// The visitor reads for longer than the session timeout, by the page's clock.
			after := time.Now().Add(timeout + time.Second).UnixMilli()
			harness.CheckFor(t, 3*timeout, 250*time.Millisecond, func() error {
				if now := eval[int64](t, tab, `Date.now()`); now <= after {
					return fmt.Errorf("the visitor is still reading: %d ms to go", after-now)
				}
				return nil
			})
			run(t, tab, chromedp.Navigate(site.URL+"/demo/pricing"))
			made(tab, 3)
			closeTab()
			if down {
				col = startRung(t, addr, data, args...)
				tab2, closeTab2 := newTab(t, browser)
				asBrowser(tab2)
				run(t, tab2, chromedp.Navigate(site.URL+"/demo/signup")) // takes the stored queue over
				col.waitAccepted(4, 60*time.Second)
				waitJS(t, tab2, stored+`.length == 0`)
				closeTab2()
			}
			col.stop()

			st, err := sqlite.Open(context.Background(), filepath.Join(data, "telemetry.db"), metrics.NewSet())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rules := sink.Rules{SessionTimeoutMs: timeout.Milliseconds(), Goals: []string{"form_submitted"}}
			from, to := time.Now().Add(-time.Hour).UnixMilli(), time.Now().Add(time.Hour).UnixMilli()
			pre, err := st.PreRolled(context.Background(), from, to, rules)
			if err != nil {
				t.Fatal(err)
			}
			re, err := st.Recompute(context.Background(), from, to, rules)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pre.Sessions, re.Sessions) {
				t.Errorf("pre-rolled sessions %+v, recomputed %+v", pre.Sessions, re.Sessions)
			}
			var landed []string
			for _, s := range pre.Sessions {
				if s.AnonymousID == anon {
					landed = append(landed, s.LandingPath)
				}
			}
			// The replayed run's last page, opened after the restart, may start a third.
			if len(landed) < 2 || landed[0] != "/demo/" || landed[1] != "/demo/pricing" || (!down && len(landed) != 2) {
				t.Errorf("sessions landing on %q, want /demo/ and then /demo/pricing; all sessions: %+v", landed, pre.Sessions)
			}
		})
	}
}
