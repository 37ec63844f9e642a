package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/preagg/stats"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/sqlite"
)

var (
	base = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	now  = base.Add(48 * time.Hour)
)

const evilPath = `/"><script>alert("x")</script>`

// seed writes rollups with known numbers: six landing pages on shop.example (one whose
// path is an attack), one on other.example; experiment hero (control, b, c) and
// experiment checkout, whose split is far from the planned 50/50.
func seed(t *testing.T) *sqlite.SQLite {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &sink.Batch{}
	hour := base.Add(5 * time.Hour).UnixMilli()
	for i, p := range []struct {
		site, path string
		n, k       int64
	}{
		{"shop.example", "/", 4210, 168}, {"shop.example", "/pricing", 1830, 201}, {"shop.example", "/blog/launch", 960, 12},
		{"shop.example", "/signup", 410, 98}, {"shop.example", evilPath, 37, 4}, {"shop.example", "", 25, 3},
		{"other.example", "/", 99, 9},
	} {
		b.Landing = append(b.Landing, sink.LandingCell{LandingKey: sink.LandingKey{Site: p.site, HourMs: hour, LandingPath: p.path},
			Cell: uint64(i + 1), Sessions: p.n, Converted: p.k, Version: 1})
	}
	arm := func(exp, variant string, n, k int) {
		for i := 0; i < n; i++ {
			anon := fmt.Sprintf("%s-%s-%d", exp, variant, i)
			b.Exposures = append(b.Exposures, sink.Exposure{Site: "shop.example", Experiment: exp, AnonymousID: anon,
				FirstMs: base.Add(time.Duration(i) * time.Second).UnixMilli(), Variant: variant})
			if i < k {
				b.Conversions = append(b.Conversions, sink.Conversion{Site: "shop.example", AnonymousID: anon, LastMs: now.UnixMilli()})
			}
		}
	}
	arm("hero", "control", 4000, 320)
	arm("hero", "b", 4000, 385)
	arm("hero", `<i>c</i>`, 4000, 300)
	arm("checkout", "control", 5000, 400)
	arm("checkout", "one-click", 4500, 430)
	if err := st.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return st
}

// server serves the API and the pages the way the collector mounts them.
func server(t *testing.T) *httptest.Server {
	t.Helper()
	return serve(t, seed(t), stats.Options{})
}

// serve serves r's stats at the test's clock; o is the rest of the stats options.
func serve(t *testing.T, r stats.Reader, o stats.Options) *httptest.Server {
	t.Helper()
	return serveWith(t, r, o, Options{})
}

// serveWith is serve with the dashboard's options besides (their clock is the test's).
func serveWith(t *testing.T, r stats.Reader, o stats.Options, do Options) *httptest.Server {
	t.Helper()
	o.Now = func() time.Time { return now }
	do.Now = o.Now
	d := New(stats.NewQueries(r, o), slog.New(slog.NewTextHandler(io.Discard, nil)), do)
	mux := http.NewServeMux()
	mux.Handle("/v1/stats/", d.API())
	mux.Handle("/", d.Pages())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, u string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	code, h, b := get(t, u)
	if code != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s\n%s", u, code, h.Get("Content-Type"), b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, b)
	}
}

func TestAPI(t *testing.T) {
	srv := server(t)
	var lp stats.LandingReport
	getJSON(t, srv.URL+"/v1/stats/landing-pages?site=shop.example&sort=cvr&limit=2&offset=1", &lp)
	if lp.Total != 6 || len(lp.Pages) != 2 || lp.Pages[0].Path != "" || lp.Pages[1].Path != "/pricing" || lp.Sort != "cvr" {
		t.Errorf("landing pages: %+v", lp)
	}
	if lp.Sessions != 4210+1830+960+410+37+25 {
		t.Errorf("total sessions %d", lp.Sessions)
	}
	var ex stats.ExperimentReport
	getJSON(t, srv.URL+"/v1/stats/experiments/hero?site=shop.example", &ex)
	if len(ex.Variants) != 3 || ex.Visitors != 12000 || ex.Control != "control" || ex.Variants[2].Name != "b" || ex.Variants[0].Name != "control" ||
		ex.Variants[2].Lift == nil || !ex.Variants[2].Lift.Significant {
		t.Errorf("hero: %+v", ex)
	}
	getJSON(t, srv.URL+"/v1/stats/experiments/checkout", &ex)
	if ex.SRM == nil || !ex.SRM.Mismatch {
		t.Errorf("checkout: SRM %+v", ex.SRM)
	}
	getJSON(t, srv.URL+"/v1/stats/experiments/checkout?weights=control:10,one-click:9", &ex)
	if ex.SRM == nil || ex.SRM.Mismatch {
		t.Errorf("checkout planned 10:9: SRM %+v", ex.SRM)
	}
	var list struct {
		Experiments []struct {
			Experiment string `json:"experiment"`
			Visitors   int64  `json:"visitors"`
		} `json:"experiments"`
	}
	getJSON(t, srv.URL+"/v1/stats/experiments", &list)
	if len(list.Experiments) != 2 || list.Experiments[1].Visitors != 12000 {
		t.Errorf("experiments: %+v", list)
	}
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/v1/stats/landing-pages?sort=bounce", 400, "sort"},
		{"/v1/stats/landing-pages?limit=x", 400, "limit"},
		{"/v1/stats/landing-pages?from=yesterday", 400, "from"},
		{"/v1/stats/experiments/hero?control=nobody", 400, "nobody"},
		{"/v1/stats/experiments/hero?weights=control", 400, "weights"},
		{"/v1/stats/nothing", 404, "no such stats endpoint"},
	} {
		code, _, b := get(t, srv.URL+c.path)
		var e struct{ Error string }
		json.Unmarshal(b, &e)
		if code != c.code || !strings.Contains(e.Error, c.want) {
			t.Errorf("GET %s: %d %s, want %d and an error naming %q", c.path, code, b, c.code, c.want)
		}
	}
	if code, _, _ := get(t, srv.URL+"/favicon.ico"); code != 404 {
		t.Errorf("unknown page: %d", code)
	}
}

// The pages escape what visitors sent, and never copy a token from the URL into links.
func TestPagesEscapeAndToken(t *testing.T) {
	srv := server(t)
	code, h, b := get(t, srv.URL+"/?site=shop.example&token=s3cr%3Ct")
	page := string(b)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("GET /: %d, CSP %q", code, h.Get("Content-Security-Policy"))
	}
	if strings.Contains(page, `<script>`) || !strings.Contains(page, `/&#34;&gt;&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`) {
		t.Errorf("the attack path is not escaped:\n%s", page)
	}
	if !strings.Contains(page, `href="/experiments/hero?site=shop.example"`) {
		t.Errorf("experiment links lose the site:\n%s", page)
	}
	if strings.Contains(page, "s3cr") {
		t.Errorf("the page copies the token from its URL:\n%s", page)
	}
	_, _, b = get(t, srv.URL+"/experiments/hero")
	if page := string(b); strings.Contains(page, "<i>c</i>") || !strings.Contains(page, "&lt;i&gt;c&lt;/i&gt;") {
		t.Errorf("a variant name is not escaped")
	}
	code, _, b = get(t, srv.URL+"/?from=yesterday")
	if code != 400 || !strings.Contains(string(b), `id="error"`) {
		t.Errorf("a bad filter: %d", code)
	}
	code, _, _ = get(t, srv.URL+"/experiments/hero?control=nobody")
	if code != 400 {
		t.Errorf("an unknown control: %d", code)
	}
}

// Every page offers to sign out in its header when it was asked for with the sign-in
// cookie of a server that has signing in, and only then; the CSP stays the same.
func TestSignOutLink(t *testing.T) {
	st := seed(t)
	servers := map[string]*httptest.Server{
		"signing in": serveWith(t, st, stats.Options{}, Options{SessionCookie: "rung_session"}),
		"open":       serve(t, st, stats.Options{}),
	}
	for _, c := range []struct {
		server, cookie string
		want           bool
	}{
		{"signing in", "rung_session=x", true},
		{"signing in", "", false},
		{"signing in", "other=x", false},
		{"open", "rung_session=x", false},
	} {
		for _, path := range []string{"/", "/?site=shop.example&utm_source=google", "/experiments/hero", "/referrers?site=shop.example&path=/", "/?from=yesterday"} {
			req, err := http.NewRequest("GET", servers[c.server].URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c.cookie != "" {
				req.Header.Set("Cookie", c.cookie)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			page := string(b)
			if got := strings.Contains(page, `<a href="/signin" class="signout" id="signout">Sign out</a></header>`); got != c.want {
				t.Errorf("%s server, cookie %q, GET %s: sign-out link %v, want %v", c.server, c.cookie, path, got, c.want)
			}
			if resp.Header.Get("Content-Security-Policy") != csp || strings.Contains(page, "<script") {
				t.Errorf("GET %s: CSP %q", path, resp.Header.Get("Content-Security-Policy"))
			}
		}
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{num(0), "0"}, {num(999), "999"}, {num(1000), "1,000"}, {num(1234567), "1,234,567"}, {num(-4200), "-4,200"},
		{pct(0), "0.0%"}, {pct(0.1234), "12.3%"}, {pct(0.004), "0.40%"}, {signedPct(0.05), "+5.0%"}, {signedPct(-0.05), "-5.0%"},
		{pvalue(0.03456), "0.0346"}, {pvalue(1e-9), "< 0.0001"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if niceCeil(0.137) != 0.2 || niceCeil(0.04) != 0.05 || niceCeil(0.9) != 1 {
		t.Errorf("niceCeil")
	}
	l := links{base: url.Values{"site": {"s"}}}
	if got := l.to("/", "sort", "cvr", "offset", ""); got != "/?site=s&sort=cvr" {
		t.Errorf("links: %s", got)
	}
}
