package collector

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

func TestRateLimitPerAddress(t *testing.T) {
	ts := newTestServer(t, Config{RateIP: 1, RateIPBurst: 5})
	got := map[int]int{}
	var retry string
	for i := 0; i < 20; i++ {
		resp, _ := post(t, ts.addr, "text/plain", okSignal)
		got[resp.StatusCode]++
		if resp.StatusCode == 429 {
			retry = resp.Header.Get("Retry-After")
		}
	}
	if got[202] < 5 || got[202] > 7 || got[429] == 0 || retry == "" {
		t.Errorf("statuses %v, Retry-After %q: want the burst of 5 through and the rest 429 with Retry-After", got, retry)
	}
	if n := metric(ts.set, `rung_requests_rejected_total{reason="rate_ip"}`); n != float64(got[429]) {
		t.Errorf("rate_ip counter %v, 429s %d", n, got[429])
	}
}

func TestSitesAndBots(t *testing.T) {
	sites, err := ParseSites("example.com,shop.example=https://shop.example")
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, Config{Sites: sites, DropBots: true, RateSite: 1})
	browser := harness.BrowserUA
	shop := strings.Replace(okSignal, "example.com", "shop.example", 1)
	tests := []struct {
		name, body, origin, ua string
		status                 int
		reason                 string
	}{
		{"known site, its own origin", okSignal, "https://www.example.com", browser, 202, ""},
		{"unknown site", strings.Replace(okSignal, "example.com", "other.example", 1), "", browser, 400, reasonUnknownSite},
		{"forged origin", okSignal, "https://evil.example", browser, 400, reasonOrigin},
		{"listed origin", shop, "https://shop.example", browser, 202, ""},
		{"unlisted origin", shop, "https://www.shop.example", browser, 400, reasonOrigin},
		{"headless browser", okSignal, "", "Mozilla/5.0 HeadlessChrome/156.0", 400, reasonBot},
		{"no user agent", okSignal, "", "", 400, reasonBot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := []string{"User-Agent", tt.ua}
			if tt.origin != "" {
				h = append(h, "Origin", tt.origin)
			}
			resp, body := post(t, ts.addr, "text/plain", tt.body, h...)
			if resp.StatusCode != tt.status || (tt.reason != "" && !strings.Contains(body, refusedWhy[tt.reason])) {
				t.Errorf("status %d %s; want %d with %s", resp.StatusCode, body, tt.status, tt.reason)
			}
			if tt.reason != "" && metric(ts.set, `rung_signals_rejected_total{reason="`+tt.reason+`"}`) == 0 {
				t.Errorf("reason %s not counted", tt.reason)
			}
		})
	}
	// The per-site rate: a burst of 10 signals/s·10 s, then 429.
	var last *http.Response
	for i := 0; i < 40; i++ {
		last, _ = post(t, ts.addr, "text/plain", okSignal, "User-Agent", browser)
		if last.StatusCode == 429 {
			break
		}
	}
	if last.StatusCode != 429 || last.Header.Get("Retry-After") == "" {
		t.Errorf("per-site rate never answered 429 with Retry-After: %d", last.StatusCode)
	}
}

func TestContentEncodingRefused(t *testing.T) {
	ts := newTestServer(t, Config{})
	resp, body := post(t, ts.addr, "application/json", "\x1f\x8b\x08", "Content-Encoding", "gzip")
	if resp.StatusCode != 415 || !strings.Contains(body, "uncompressed") {
		t.Errorf("gzip body: %d %s", resp.StatusCode, body)
	}
}

func TestAdminListener(t *testing.T) {
	reg, _ := schemas.NewRegistry()
	set := metrics.NewSet()
	private := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "stats") })
	public := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "place") })
	srv := New(Config{AdminSeparate: true, APIToken: "s3cret"}, reg, discard{}, func(context.Context) error { return nil },
		set, slog.New(slog.NewTextHandler(io.Discard, nil)),
		Mount{Prefix: "/v1/stats/", Handler: private, Private: true}, Mount{Prefix: "/place", Handler: public})
	pub, _ := net.Listen("tcp", "127.0.0.1:0")
	adm, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- srv.Serve(ctx, pub, time.Second) }()
	go func() { done <- srv.ServeAdmin(ctx, adm, time.Second) }()
	defer func() { closeClientConns(); cancel(); <-done; <-done }()
	get := func(ln net.Listener, path, token string) int {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		ln          net.Listener
		path, token string
		want        int
	}{
		{pub, "/metrics", "s3cret", 404}, {pub, "/v1/stats/x", "s3cret", 404}, {pub, "/place", "", 200},
		{pub, "/schemas/index.json", "", 200}, {pub, "/schemas/pageview.v1.json", "", 200},
		{adm, "/metrics", "", 401}, {adm, "/metrics", "wrong", 401}, {adm, "/metrics", "s3cret", 200},
		{adm, "/v1/stats/x", "s3cret", 200}, {adm, "/place", "s3cret", 404}, {adm, "/collect", "", 404},
	} {
		if got := get(c.ln, c.path, c.token); got != c.want {
			name := "public"
			if c.ln == adm {
				name = "admin"
			}
			t.Errorf("%s %s (token %q): %d, want %d", name, c.path, c.token, got, c.want)
		}
	}
}

type discard struct{}

func (discard) Append(context.Context, []*schemas.Signal, []error) {}

func metric(set *metrics.Set, name string) float64 {
	var sb strings.Builder
	set.WritePrometheus(&sb)
	for _, line := range strings.Split(sb.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
