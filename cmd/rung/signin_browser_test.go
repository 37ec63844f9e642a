package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/rungdev/rung/internal/harness"
)

// seedBatch is a visitor who landed on /pricing from a referrer, was exposed to the
// hero experiment and converted, another exposed visitor, and a signal the schema
// rejects: something on every page and in every report.
const seedBatch = `[{"type":"pageview","site":"example.com","anonymous_id":"visitor-0001","url":"https://example.com/pricing?utm_source=nl","referrer":"https://news.example/"},` +
	`{"type":"exposure","site":"example.com","anonymous_id":"visitor-0001","experiment":"hero","variant":"control"},` +
	`{"type":"exposure","site":"example.com","anonymous_id":"visitor-0002","experiment":"hero","variant":"b"},` +
	`{"type":"event","site":"example.com","anonymous_id":"visitor-0001","name":"form_submitted"},{"type":"click"}]`

// seed posts seedBatch to p and waits until the experiment is rolled up.
func seed(t *testing.T, p *proc, token string) {
	t.Helper()
	resp := request(t, "POST", p.url("/collect"), "text/plain", seedBatch, "User-Agent", harness.BrowserUA)
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("POST /collect: %d", resp.StatusCode)
	}
	harness.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp := request(t, "GET", p.url("/v1/stats/experiments/hero?site=example.com"), "", "", "Authorization", "Bearer "+token)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(b, []byte(`"lift"`)) {
			return fmt.Errorf("the experiment is not rolled up yet: %d %s", resp.StatusCode, b)
		}
		return nil
	})
}

// TestSignInInChromium: in headless Chromium, a private page sends the browser to the
// sign-in form, the token brings it back signed in with an HttpOnly, SameSite=Strict
// cookie; no page it can reach then carries the token in any URL (href, src, action,
// the history) or anywhere in its HTML; signing out ends the session.
func TestSignInInChromium(t *testing.T) {
	const token = "chromium-s3cret-token"
	p := startServe(t, "--api-token", token, "--flush-interval", "50ms")
	seed(t, p, token)
	ctx, cancel := context.WithTimeout(harness.Browser(t), 3*time.Minute) // a bound for a hung browser, not a timing goal
	defer cancel()
	do := func(what string, actions ...chromedp.Action[chromedp.Void]) int64 {
		t.Helper()
		resp, err := chromedp.RunResponse(ctx, actions...)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return resp.Status
	}
	location := func() string {
		t.Helper()
		u, err := chromedp.Run(ctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	session := func() *network.Cookie {
		t.Helper()
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{p.url("/")}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Cookies {
			if c.Name == "rung_session" {
				return c
			}
		}
		return nil
	}

	// A private page, not signed in: the sign-in form, which knows where to go back to.
	if st := do("open the dashboard", chromedp.Navigate(p.url("/?site=example.com"))); st != 200 {
		t.Fatalf("the dashboard without a session ends at %d", st)
	}
	if got, want := location(), p.url("/signin?next="+url.QueryEscape("/?site=example.com")); got != want {
		t.Fatalf("the dashboard without a session: at %s, want %s", got, want)
	}
	shoot(t, ctx, "signin-1280.png", 1280)
	shoot(t, ctx, "signin-390.png", 390)

	// A wrong token: the form again, saying so, and no cookie.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#token"), "not-"+token)); err != nil {
		t.Fatal(err)
	}
	if st := do("sign in with a wrong token", chromedp.Click(chromedp.CSS("#submit"))); st != 401 {
		t.Errorf("a wrong token: %d, want 401", st)
	}
	if msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#error"))); err != nil || msg == "" || session() != nil {
		t.Errorf("a wrong token: error %q (%v), cookie %v", msg, err, session())
	}

	// The right token: back at the dashboard, signed in.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#token"), token)); err != nil {
		t.Fatal(err)
	}
	if st := do("sign in", chromedp.Click(chromedp.CSS("#submit"))); st != 200 {
		t.Fatalf("signed in, the dashboard answers %d", st)
	}
	if got := location(); got != p.url("/?site=example.com") {
		t.Errorf("signed in, at %s, want back at the dashboard", got)
	}
	c := session()
	if c == nil {
		t.Fatal("signed in without a rung_session cookie")
	}
	if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Secure || c.Path != "/" {
		t.Errorf("the cookie: HttpOnly %v, SameSite %q, Secure %v, Path %q; want HttpOnly, Strict, not Secure over plain HTTP, /",
			c.HTTPOnly, c.SameSite, c.Secure, c.Path)
	}
	if strings.Contains(c.Value, token) {
		t.Error("the cookie holds the token")
	}
	if js, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`)); err != nil || strings.Contains(js, "rung_session") {
		t.Errorf("a script reads the session cookie: %q %v", js, err)
	}

	// Every page reachable from the dashboard, signed in: no token anywhere.
	seen := map[string]bool{}
	queue := []string{p.url("/?site=example.com")}
	for len(queue) > 0 && len(seen) < 25 {
		u := queue[0]
		queue = queue[1:]
		if seen[u] {
			continue
		}
		seen[u] = true
		if st := do("open "+u, chromedp.Navigate(u)); st != 200 {
			t.Errorf("signed in, %s answers %d", u, st)
			continue
		}
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({html: document.documentElement.outerHTML,
			urls: [...document.querySelectorAll('[href],[src],[action],[formaction]')].map(e =>
				e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action') || e.getAttribute('formaction')),
			links: [...document.querySelectorAll('a[href]')].map(a => a.href)})`))
		if err != nil {
			t.Fatal(err)
		}
		var pg struct {
			HTML        string
			URLs, Links []string
		}
		if err := json.Unmarshal([]byte(raw), &pg); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(pg.HTML, token) {
			t.Errorf("%s shows the token", u)
		}
		for _, ref := range pg.URLs {
			if strings.Contains(ref, token) || strings.Contains(strings.ToLower(ref), "token=") {
				t.Errorf("%s links to %q, a URL with a token", u, ref)
			}
		}
		for _, l := range pg.Links {
			// A CSV link is a download, which a navigation reports as aborted; its URL
			// was checked for a token above.
			if strings.HasPrefix(l, p.url("/")) && !strings.Contains(l, "/signout") && !strings.Contains(l, "format=csv") {
				queue = append(queue, strings.SplitN(l, "#", 2)[0])
			}
		}
	}
	var experiment, referrers bool
	for u := range seen {
		experiment = experiment || strings.Contains(u, "/experiments/hero")
		referrers = referrers || strings.Contains(u, "/referrers")
	}
	if !experiment || !referrers {
		t.Errorf("the walk from the dashboard never reached an experiment's page and a referrers page: %v", seen)
	}
	t.Logf("walked %d pages signed in", len(seen))
	hist, err := chromedp.Call(ctx, page.GetNavigationHistory, cdp.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range hist.Entries {
		if strings.Contains(e.URL, token) || strings.Contains(e.URL, "token=") {
			t.Errorf("the history holds %s", e.URL)
		}
	}

	// Signing out, by the dashboard header's link to the sign-in page and its button:
	// the cookie is gone, and the dashboard asks to sign in again.
	do("open the dashboard", chromedp.Navigate(p.url("/?site=example.com")))
	if link, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!document.querySelector('header #signout')`)); err != nil || !link {
		t.Fatalf("signed in, the dashboard's header has no sign-out link (%v)", err)
	}
	if st := do("follow the header's sign-out link", chromedp.Click(chromedp.CSS("header #signout"))); st != 200 || location() != p.url("/signin") {
		t.Errorf("the header's sign-out link leads to %s (%d), want /signin", location(), st)
	}
	if st := do("sign out", chromedp.Click(chromedp.CSS("#signout"))); st != 200 {
		t.Errorf("signed out: %d", st)
	}
	if c := session(); c != nil {
		t.Errorf("signed out, the cookie is still there: %+v", c)
	}
	do("open the dashboard", chromedp.Navigate(p.url("/")))
	if got := location(); !strings.HasPrefix(got, p.url("/signin?next=")) {
		t.Errorf("signed out, the dashboard leads to %s, want the sign-in page", got)
	}
}

// shoot saves a full-page screenshot at width px to $RUNG_SCREENSHOTS, or to the test's
// temporary directory.
func shoot(t *testing.T, ctx context.Context, name string, width int64) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, 900)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("RUNG_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", filepath.Join(dir, name))
}
