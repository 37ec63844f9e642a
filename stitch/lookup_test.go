package stitch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	sinksqlite "github.com/rungdev/rung/sink/sqlite"
)

// openSink is a real embedded telemetry sink in the test's directory.
func openSink(t testing.TB) *sinksqlite.SQLite {
	t.Helper()
	s, err := sinksqlite.Open(context.Background(), filepath.Join(t.TempDir(), "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func store(t testing.TB, s sink.Sink, signals ...schemas.Signal) {
	t.Helper()
	for i := range signals {
		if signals[i].EventID == "" {
			signals[i].EventID = "ev-" + signals[i].AnonymousID + "-" + time.UnixMilli(signals[i].ReceivedAt).Format("150405.000")
		}
	}
	if err := s.Write(context.Background(), &sink.Batch{Signals: signals}); err != nil {
		t.Fatal(err)
	}
}

var _ Signals = (*sinksqlite.SQLite)(nil)

func TestLookupReadsTheSink(t *testing.T) {
	ctx := context.Background()
	s := openSink(t)
	store(t, s, exposure(-time.Minute, "hero", "b"),
		pv(0, "https://shop.example/pricing?utm_source=google", "/pricing", "", "google", "cpc", "spring"))
	l, err := NewLookup(s, LookupConfig{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	clock := t0
	l.now = func() time.Time { return clock }

	a, err := l.Attribution(ctx, visitor)
	if err != nil {
		t.Fatal(err)
	}
	if a.LastTouch.Source != "google" || a.LandingPage != "/pricing" || a.Variants["hero"] != "b" || !a.FirstSeen.Equal(t0.Add(-time.Minute)) {
		t.Fatalf("attribution %+v", a)
	}
	a.Variants["hero"] = "mutated by the caller"

	// The visitor comes back through a newsletter: within the TTL the cache answers,
	// after it the sink does.
	store(t, s, pv(time.Hour, "https://shop.example/sale", "/sale", "", "newsletter", "email"))
	if a, _ := l.Attribution(ctx, visitor); a.LastTouch.Source != "google" || a.Variants["hero"] != "b" {
		t.Fatalf("cached attribution %+v", a)
	}
	clock = clock.Add(2 * time.Minute)
	if a, _ := l.Attribution(ctx, visitor); a.LastTouch.Source != "newsletter" || a.FirstTouch.Source != "google" {
		t.Fatalf("attribution after the TTL %+v", a)
	}

	unknown, err := l.Attribution(ctx, "never-seen-visitor")
	if err != nil || unknown.Known() || unknown.AnonymousID != "never-seen-visitor" {
		t.Fatalf("unknown visitor: %+v, %v", unknown, err)
	}
	if a, err := l.Attribution(ctx, ""); err != nil || a.Known() {
		t.Fatalf("empty id: %+v, %v", a, err)
	}
	for _, bad := range []string{"short", "has space in it", strings.Repeat("x", 65), "dröm-visitor"} {
		if _, err := l.Attribution(ctx, bad); !errors.Is(err, ErrInvalidAnonymousID) {
			t.Errorf("%q: %v, want ErrInvalidAnonymousID", bad, err)
		}
	}
	var m strings.Builder
	l.WriteMetrics(&m)
	for _, want := range []string{`result="cache_hit"} 1`, `result="sink_read"} 3`} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, m.String())
		}
	}
}

func TestLookupCacheIsBounded(t *testing.T) {
	s := openSink(t)
	l, err := NewLookup(s, LookupConfig{TTL: time.Hour, MaxEntries: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if _, err := l.Attribution(context.Background(), "visitor-"+strings.Repeat("x", 3)+string(rune('a'+i%26))+string(rune('a'+i/26))); err != nil {
			t.Fatal(err)
		}
	}
	l.mu.Lock()
	n := len(l.entries)
	l.mu.Unlock()
	if n > 10 {
		t.Fatalf("cache holds %d entries, bound 10", n)
	}
}

func TestHandler(t *testing.T) {
	s := openSink(t)
	store(t, s, pv(0, "https://shop.example/pricing?utm_source=google", "/pricing", "", "google", "cpc"))
	l, err := NewLookup(s, LookupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	get := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("GET", "/v1/visitors/"+visitor+"/attribution")
	var a Attribution
	if err := json.Unmarshal([]byte(body), &a); code != 200 || err != nil || a.LastTouch.Source != "google" || a.LandingPage != "/pricing" {
		t.Fatalf("known visitor: %d %s", code, body)
	}
	if code, body := get("GET", "/v1/visitors/never-seen-visitor/attribution"); code != 200 || body != "{\"anonymous_id\":\"never-seen-visitor\"}\n" {
		t.Fatalf("unknown visitor: %d %q", code, body)
	}
	if code, body := get("GET", "/v1/visitors/bad!id/attribution"); code != 400 || !strings.Contains(body, "anonymous_id") {
		t.Fatalf("bad id: %d %s", code, body)
	}
	if code, _ := get("POST", "/v1/visitors/"+visitor+"/attribution"); code != 405 {
		t.Fatalf("POST: %d, want 405", code)
	}
	s.Close() // the sink goes away: 503, not an empty attribution
	l2, _ := NewLookup(s, LookupConfig{TTL: -1})
	srv2 := httptest.NewServer(l2.Handler())
	defer srv2.Close()
	resp, err := http.Get(srv2.URL + "/v1/visitors/" + visitor + "/attribution")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("sink closed: %d, want 503 with Retry-After", resp.StatusCode)
	}
}

func TestClient(t *testing.T) {
	s := openSink(t)
	store(t, s, exposure(-time.Minute, "hero", "b"),
		pv(0, "https://shop.example/pricing?utm_source=google", "/pricing", "", "google", "cpc", "spring"))
	l, err := NewLookup(s, LookupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	c := &Client{BaseURL: srv.URL + "/"}
	ctx := context.Background()
	got, err := c.Attribution(ctx, visitor)
	want, _ := l.Attribution(ctx, visitor)
	if err != nil || !got.FirstSeen.Equal(want.FirstSeen) || got.LastTouch.Source != "google" || got.Variants["hero"] != "b" || got.LandingPage != want.LandingPage {
		t.Fatalf("client %+v, %v; lookup %+v", got, err, want)
	}
	if a, err := c.Attribution(ctx, "never-seen-visitor"); err != nil || a.Known() {
		t.Fatalf("unknown: %+v, %v", a, err)
	}
	if _, err := c.Attribution(ctx, "bad id"); !errors.Is(err, ErrInvalidAnonymousID) {
		t.Fatalf("bad id: %v", err)
	}
	if _, err := (&Client{BaseURL: srv.URL + "/nowhere"}).Attribution(ctx, visitor); !errors.Is(err, ErrSignals) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("wrong base URL: %v", err)
	}
}
