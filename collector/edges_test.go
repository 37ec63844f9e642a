package collector

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
)

// TestErrorAnswersAreJSON sends each kind of request the collector refuses over a raw
// connection to a real server, including those fasthttp refuses before any handler
// runs (malformed, slow, oversized heads and bodies), and checks that every answer has
// its status and the collector's JSON error shape: {"error":"..."}.
func TestErrorAnswersAreJSON(t *testing.T) {
	cfg := Config{MaxBodyBytes: 1024, ReadTimeout: 300 * time.Millisecond, MaxHeaderBytes: 4096, APIToken: "secret"}
	notReady := func(context.Context) error { return errors.New("the sink does not answer") }
	addr, _ := serveRaw(t, cfg, notReady)

	head := func(method, path string, header ...string) string {
		return method + " " + path + " HTTP/1.1\r\nHost: rung\r\n" + strings.Join(header, "") + "\r\n"
	}
	post := func(ct, body string) string {
		return head("POST", "/collect", "Content-Type: "+ct+"\r\n", "Content-Length: "+strconv.Itoa(len(body))+"\r\n") + body
	}
	multipart := "--xyz\r\nContent-Disposition: form-data; name=\"signal\"\r\n\r\n" + okSignal + "\r\n--xyz--\r\n"
	tests := []struct {
		name   string
		send   string // written at once; the connection then stays open, sending nothing more
		status int
	}{
		// Refused by fasthttp, answered through Server.ErrorHandler.
		{"malformed request line", "NOT-HTTP\r\n\r\n", 400},
		{"malformed header", "POST /collect HTTP/1.1\r\nHost: rung\r\nno colon here\r\n\r\n", 400},
		{"broken chunked body", head("POST", "/collect", "Content-Type: text/plain\r\n", "Transfer-Encoding: chunked\r\n") + "zz\r\n{}\r\n", 400},
		{"head too large", head("GET", "/healthz", "X-Padding: "+strings.Repeat("a", 8000)+"\r\n"), 431},
		{"slow head", "POST /collect HTTP/1.1\r\nHost: rung\r\n", 408},
		{"slow body", head("POST", "/collect", "Content-Type: text/plain\r\n", "Content-Length: 100\r\n") + "{", 408},
		{"body far too large", head("POST", "/collect", "Content-Type: text/plain\r\n", "Content-Length: 10000000\r\n"), 413},
		// Refused by the collector.
		{"multipart", post("multipart/form-data; boundary=xyz", multipart), 415},
		{"malformed multipart", post("multipart/form-data; boundary=xyz", "not multipart at all"), 415},
		{"other content type", post("text/html", okSignal), 415},
		{"malformed JSON", post("text/plain", "{"), 400},
		{"body too large", post("text/plain", "["+strings.Repeat(" ", 1500)+okSignal+"]"), 413},
		{"method", head("GET", "/collect"), 405},
		{"unknown path", head("GET", "/nowhere"), 404},
		{"unknown schema", head("GET", "/schemas/nothing.json"), 404},
		{"no token", head("GET", "/metrics"), 401},
		{"not ready", head("GET", "/readyz"), 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, tt.send); err != nil {
				t.Fatal(err)
			}
			answeredJSON(t, c, tt.status)
		})
	}
}

// answeredJSON reads one answer from c and checks its status and that it is the
// collector's JSON error.
func answeredJSON(t *testing.T, c net.Conn, status int) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json: %s", ct, body)
	}
	var answer map[string]any
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatalf("body is not JSON: %v: %q", err, body)
	}
	if msg, ok := answer["error"].(string); !ok || msg == "" || len(answer) != 1 {
		t.Errorf(`body %s, want {"error":"..."}`, body)
	}
}

// TestConnectionCapsAnswerJSON fills the per-address and the global connection caps
// and checks that the connection over each is answered in JSON (429, 503) and closed,
// and that a closed connection gives its place back.
func TestConnectionCapsAnswerJSON(t *testing.T) {
	cfg := Config{MaxConns: 3, MaxConnsPerIP: 2, ReadTimeout: 10 * time.Second}
	addr, set := serveRaw(t, cfg, func(context.Context) error { return nil })
	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	healthy := func(c net.Conn) error {
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: rung\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		return nil
	}
	held := []net.Conn{dial("127.0.0.1"), dial("127.0.0.1")}
	for _, c := range held {
		if err := healthy(c); err != nil { // served, and kept alive: the places stay taken
			t.Fatal(err)
		}
	}
	answeredJSON(t, dial("127.0.0.1"), 429)
	third := dial("127.0.0.2")
	if err := healthy(third); err != nil {
		t.Fatal(err)
	}
	answeredJSON(t, dial("127.0.0.3"), 503)
	if got := metric(set, `rung_requests_rejected_total{reason="max_conns_per_ip"}`); got != 1 {
		t.Errorf("max_conns_per_ip refusals counted %v, want 1", got)
	}
	if got := metric(set, `rung_requests_rejected_total{reason="max_conns"}`); got != 1 {
		t.Errorf("max_conns refusals counted %v, want 1", got)
	}
	// The server sees the close when it next reads; the place is free once it has.
	held[0].Close()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := healthy(dial("127.0.0.1"))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed connection's place was not given back: %v", err)
		}
	}
}

// serveRaw serves a collector whose signals go nowhere on a local port until t ends,
// and returns its address and metrics.
func serveRaw(t *testing.T, cfg Config, ready func(context.Context) error) (string, *metrics.Set) {
	t.Helper()
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	srv := New(cfg, reg, discard{}, ready, set, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String(), set
}
