package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/sqlite"
)

const okSignal = `{"type":"pageview","site":"example.com","anonymous_id":"visitor-0001","url":"https://example.com/"}`

// testServer is a collector on a real port with a real buffer and SQLite sink behind it.
type testServer struct {
	addr  string
	store *sqlite.SQLite
	buf   *buffer.Buffer
	set   *metrics.Set
	stop  func()
}

func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	ctx := context.Background()
	set := metrics.NewSet()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "sink.db"), set)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	buf := buffer.New(buffer.Config{BatchSize: 100, FlushInterval: 10 * time.Millisecond}, func(ctx context.Context, s []schemas.Signal) error {
		return store.Write(ctx, &sink.Batch{Signals: s})
	}, set)
	srv := New(cfg, reg, buf, store.Ping, set, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, ln, time.Second) }()
	drained := make(chan error, 1)
	go func() { drained <- buf.Run(ctx) }()
	ts := &testServer{addr: ln.Addr().String(), store: store, buf: buf, set: set}
	stopped := false
	ts.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-served
		buf.Close()
		<-drained
	}
	t.Cleanup(func() { closeClientConns(); ts.stop(); store.Close() })
	return ts
}

// closeClientConns closes the keep-alive connections the tests' http.DefaultClient
// holds, before the server they lead to is stopped. fasthttp counts a connection with
// no request yet as idle only 5 s after accepting it, so Shutdown would not close one
// the client dialed late: it waits out the grace period and leaves it open, with a
// goroutine on each side (goleak saw them under -race).
func closeClientConns() { http.DefaultClient.CloseIdleConnections() }

func (ts *testServer) rows(t *testing.T) int {
	t.Helper()
	got, err := ts.store.Signals(context.Background(), 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	return len(got)
}

func post(t *testing.T, addr, ct, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+"/collect", strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func with(field string) string { return strings.Replace(okSignal, `}`, ","+field+"}", 1) }

func TestBadInput(t *testing.T) {
	ts := newTestServer(t, Config{MaxBodyBytes: 1 << 20, MaxBatch: 10})
	tests := []struct {
		name   string
		ct     string
		body   string
		status int
		want   string // substring of the answer
	}{
		{"malformed JSON", "application/json", `{"type":`, 400, "malformed JSON"},
		{"not JSON", "text/plain", `hello`, 400, "neither a signal"},
		{"truncated", "text/plain", okSignal[:30], 400, "malformed JSON"},
		{"empty body", "application/json", ``, 400, "no signals"},
		{"scalar body", "application/json", `42`, 400, "neither a signal"},
		{"wrong type of field", "application/json", strings.Replace(okSignal, `"example.com"`, `42`, 1), 400, `"pointer":"/site"`},
		{"missing field", "application/json", `{"type":"pageview","site":"example.com","anonymous_id":"visitor-0001"}`, 400, "url"},
		{"unknown type", "application/json", `{"type":"click","site":"example.com","anonymous_id":"visitor-0001"}`, 400, `"pointer":"/type"`},
		{"oversized batch", "application/json", "[" + strings.TrimSuffix(strings.Repeat(okSignal+",", 11), ",") + "]", 413, "too many signals"},
		{"deep nesting", "application/json", strings.Repeat("[", 100000), 400, "nested too deeply"},
		{"deep nesting in a field", "application/json", `{"x":` + strings.Repeat(`{"a":`, 100000), 400, "nested too deeply"},
		{"invalid UTF-8", "application/json", strings.Replace(okSignal, "example.com/", "example.com/\xff", 1), 400, "invalid UTF-8"},
		{"lone surrogate", "application/json", strings.Replace(okSignal, "example.com/", `example.com/\udc00`, 1), 400, "surrogate"},
		{"huge string", "application/json", with(`"referrer":"` + strings.Repeat("x", 3000) + `"`), 400, `"pointer":"/referrer"`},
		{"huge number", "application/json", with(`"value":1e999999999`), 400, "out of range"},
		{"long number", "application/json", with(`"value":` + strings.Repeat("1", 1000)), 400, "out of range"},
		{"number over the maximum", "application/json", with(`"value":1e300`), 400, `"pointer":"/value"`},
		{"duplicate keys", "application/json", with(`"site":"other.example"`), 400, "duplicate key"},
		{"wrong content type", "application/x-www-form-urlencoded", okSignal, 415, "content type"},
		{"no content type", "", okSignal, 415, "content type"},
		{"html injection in reason", "application/json", with(`"<script>":1`), 400, `\u003cscript\u003e`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, ts.addr, tt.ct, tt.body)
			if resp.StatusCode != tt.status || !strings.Contains(body, tt.want) {
				t.Errorf("status %d body %.300s; want %d containing %q", resp.StatusCode, body, tt.status, tt.want)
			}
			if !json.Valid([]byte(body)) {
				t.Errorf("answer is not JSON: %.300s", body)
			}
		})
	}
	ts.stop()
	if n := ts.rows(t); n != 0 {
		t.Errorf("%d rows stored from bad input", n)
	}
}

func TestMixedBatch(t *testing.T) {
	ts := newTestServer(t, Config{})
	body := `[` + okSignal + `,{"type":"pageview"},` + with(`"event_id":"evt-00000042"`) + `,"nope"]`
	resp, got := post(t, ts.addr, "text/plain;charset=UTF-8", body)
	var ans struct {
		Accepted, Rejected int
		Errors             []struct {
			Index   int
			Pointer string
			Reason  string
		}
	}
	if err := json.Unmarshal([]byte(got), &ans); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 202 || ans.Accepted != 2 || ans.Rejected != 2 || ans.Errors[0].Index != 1 || ans.Errors[1].Index != 3 {
		t.Fatalf("status %d answer %s", resp.StatusCode, got)
	}
	ts.stop()
	if n := ts.rows(t); n != 2 {
		t.Errorf("stored %d rows, want 2", n)
	}
}

// TestBodyLimit posts a body exactly at the limit and one a byte over on one
// keep-alive connection: 202, then 413, then the connection still answers.
func TestBodyLimit(t *testing.T) {
	const maxBody = 2048
	ts := newTestServer(t, Config{MaxBodyBytes: maxBody})
	conn, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	at := okSignal + strings.Repeat(" ", maxBody-len(okSignal))
	for i, c := range []struct {
		body   string
		status int
	}{{at, 202}, {at + " ", 413}, {okSignal, 202}} {
		fmt.Fprintf(conn, "POST /collect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(c.body), c.body)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("request %d (%d bytes): status %d, want %d", i, len(c.body), resp.StatusCode, c.status)
		}
		if resp.Close {
			t.Fatalf("request %d: server closed the connection", i)
		}
	}
}

func TestMethodsAndCORS(t *testing.T) {
	ts := newTestServer(t, Config{AllowedOrigins: []string{"https://shop.example"}})
	url := "http://" + ts.addr + "/collect"

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST, OPTIONS" {
		t.Errorf("GET: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}

	// A preflight is answered from headers: its (unexpected) body is never read.
	req, _ := http.NewRequest("OPTIONS", url, nil)
	req.Header.Set("Origin", "https://shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	r2, body := post(t, ts.addr, "text/plain", okSignal, "Origin", "https://evil.example")
	if r2.StatusCode != 403 || !strings.Contains(body, "origin") {
		t.Errorf("forbidden origin: %d %s", r2.StatusCode, body)
	}
	r3, _ := post(t, ts.addr, "text/plain", okSignal, "Origin", "https://shop.example")
	if r3.StatusCode != 202 || r3.Header.Get("Access-Control-Allow-Origin") != "https://shop.example" {
		t.Errorf("allowed origin: %d %v", r3.StatusCode, r3.Header)
	}
}

func TestBufferFullAnswers503(t *testing.T) {
	ctx := context.Background()
	set := metrics.NewSet()
	reg, _ := schemas.NewRegistry()
	block := make(chan struct{})
	buf := buffer.New(buffer.Config{BatchSize: 1 << 20, FlushInterval: time.Hour, MaxBytes: 64 << 10, Shards: 1, Flushers: 1},
		func(ctx context.Context, s []schemas.Signal) error { <-block; return nil }, set)
	srv := New(Config{RetryAfter: 2 * time.Second}, reg, buf, func(context.Context) error { return nil }, set, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln, time.Second) }()
	defer func() { closeClientConns(); cancel(); <-done }()
	got503 := false
	for i := 0; i < 1000 && !got503; i++ {
		resp, body := post(t, ln.Addr().String(), "application/json", okSignal)
		switch resp.StatusCode {
		case 202:
		case 503:
			got503 = true
			if resp.Header.Get("Retry-After") != "2" || !strings.Contains(body, "buffer full") {
				t.Errorf("503 without Retry-After 2 or reason: %v %s", resp.Header, body)
			}
		default:
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	if !got503 {
		t.Fatal("the buffer never filled")
	}
	close(block)
}

func TestIsBot(t *testing.T) {
	var cache botCache
	for ua, want := range map[string]bool{
		"": true,
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36":         false,
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36": true,
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)":                                  true,
		"curl/8.1.2": true,
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1": false,
	} {
		if got := isBot([]byte(ua)); got != want {
			t.Errorf("isBot(%q) = %v", ua, got)
		}
		for range 2 { // the second answer comes from the cache
			if got := cache.isBot([]byte(ua)); got != want {
				t.Errorf("cached isBot(%q) = %v", ua, got)
			}
		}
	}
}

// TestBotCacheCollisions sends more user agents than the cache has slots, bots and
// browsers interleaved, so that they displace each other: every answer must still be
// the user agent's own.
func TestBotCacheCollisions(t *testing.T) {
	var cache botCache
	for pass := 0; pass < 3; pass++ {
		for i := 0; i < 4*len(cache.slots); i++ {
			ua, want := fmt.Sprintf("Mozilla/5.0 Chrome/%d.0", i), false
			if i%3 == 0 {
				ua, want = fmt.Sprintf("ExampleBot/%d.0", i), true
			}
			if got := cache.isBot([]byte(ua)); got != want {
				t.Fatalf("pass %d: isBot(%q) = %v", pass, ua, got)
			}
		}
	}
}

// TestStoredIntact checks that what the handler hands on survives the reuse of the
// request's memory: signals whose strings point into the body, one with a string the
// decoder unescaped, and one whose path the decoder made, all come back from the store
// as sent, though the bodies of later requests overwrote the ones they were decoded from.
func TestStoredIntact(t *testing.T) {
	ts := newTestServer(t, Config{})
	snippet := `{"type":"pageview","site":"example.com","anonymous_id":"visitor-0001","event_id":"0d6f7a3e-5a0b-4c1e-9c43-000000000001",` +
		`"url":"https://example.com/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring","referrer":"https://www.google.com/","props":{"plan":"pro"}}`
	escaped := with(`"event_id":"escaped-0001","referrer":"https://example.org/caf\u00e9"`)
	for _, body := range []string{
		`[` + snippet + `,` + strings.Replace(snippet, "000000000001", "000000000002", 1) + `]`,
		escaped,
		strings.NewReplacer("https://example.com/pricing?", "https://example.com?", "000000000001", "000000000003").Replace(snippet), // path "/"
	} {
		if resp, got := post(t, ts.addr, "text/plain;charset=UTF-8", body); resp.StatusCode != 202 {
			t.Fatalf("status %d: %s", resp.StatusCode, got)
		}
	}
	ts.stop()
	got, err := ts.store.Signals(context.Background(), 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]schemas.Signal{}
	for _, s := range got {
		ids[s.EventID] = s
	}
	s := ids["0d6f7a3e-5a0b-4c1e-9c43-000000000002"]
	if len(got) != 4 || ids["0d6f7a3e-5a0b-4c1e-9c43-000000000003"].Path != "/" || ids["escaped-0001"].Referrer != "https://example.org/café" ||
		s.Path != "/pricing" || s.UTMCampaign != "spring" || s.Referrer != "https://www.google.com/" || s.Props != `{"plan":"pro"}` {
		t.Errorf("stored %+v", got)
	}
}
