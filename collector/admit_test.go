package collector

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

// newFullServer is a collector in front of a buffer that is full and stays full (its
// sink never answers until the test ends), admitting bodies as `rung serve` does when
// admit is set.
func newFullServer(tb testing.TB, admit bool) (*Server, *metrics.Set) {
	tb.Helper()
	set := metrics.NewSet()
	block := make(chan struct{})
	buf := buffer.New(buffer.Config{BatchSize: 10, FlushInterval: time.Millisecond, MaxBytes: 64 << 10},
		func(ctx context.Context, _ []schemas.Signal) error {
			select {
			case <-block:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}, set)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- buf.Run(ctx) }()
	tb.Cleanup(func() { close(block); buf.Close(); <-ran; cancel() })
	for i := 0; ; i++ {
		s := schemas.Signal{Type: schemas.TypePageview, Site: "example.com", AnonymousID: fmt.Sprintf("filler-%d", i), EventID: fmt.Sprint(i)}
		if err := buf.Push(&s); errors.Is(err, buffer.ErrFull) {
			break
		} else if err != nil {
			tb.Fatal(err)
		}
	}
	reg, err := schemas.NewRegistry()
	if err != nil {
		tb.Fatal(err)
	}
	cfg := Config{}
	if admit {
		cfg.Admits = buf.Admits
	}
	return New(cfg, reg, buf, func(context.Context) error { return nil }, set, slog.New(slog.NewTextHandler(io.Discard, nil))), set
}

// TestFullRefusedBeforeDecode: a body that comes while the buffer has no room for it is
// answered 503 + Retry-After without being decoded. A malformed one gets the same 503,
// not the 400 its decoding would give; no signal is counted as received; and the
// refusal allocates nothing.
func TestFullRefusedBeforeDecode(t *testing.T) {
	srv, set := newFullServer(t, true)
	for _, body := range []string{benchBatch(50), `{"type":"pageview",` + strings.Repeat(`"x":`, 100)} {
		ctx := harness.CollectRequest(body)
		srv.Handler(ctx)
		if code := ctx.Response.StatusCode(); code != 503 || string(ctx.Response.Header.Peek("Retry-After")) != "1" ||
			!strings.Contains(string(ctx.Response.Body()), "buffer full") {
			t.Errorf("%.40s…: %d %s, want 503 with Retry-After 1", body, code, ctx.Response.Body())
		}
	}
	if got := metric(set, "rung_signals_received_total"); got != 0 {
		t.Errorf("rung_signals_received_total = %v: a refused body was decoded", got)
	}
	if got := metric(set, `rung_requests_rejected_total{reason="buffer_full"}`); got != 2 {
		t.Errorf(`rung_requests_rejected_total{reason="buffer_full"} = %v, want 2`, got)
	}
	harness.SkipAllocsUnderRace(t)
	ctx := harness.CollectRequest(benchBatch(50))
	if allocs := testing.AllocsPerRun(100, func() { ctx.Response.Reset(); srv.Handler(ctx) }); allocs > 0 {
		t.Errorf("a refusal allocates %.1f times, want none", allocs)
	}
}

// BenchmarkFullRefusal is what a full buffer costs per request of 50 signals, whole
// requests over an in-memory connection, each against the bare server's 202 (the
// baseline of bench/wrk/compare.sh), alternated in the same run: rung refusing before
// the decode (refused/bare), and, for comparison, rung without admission, decoding the
// body first and refusing its signals one by one (decoded/bare).
func BenchmarkFullRefusal(b *testing.B) {
	body := benchBatch(50)
	for _, tc := range []struct {
		name  string
		admit bool
	}{{"refused", true}, {"decoded", false}} {
		b.Run(tc.name, func(b *testing.B) {
			srv, _ := newFullServer(b, tc.admit)
			rung, bareC := dialInMemory(b, srv.fasthttp(srv.Handler)), dialInMemory(b, &fasthttp.Server{Handler: bare})
			req := fasthttp.AcquireRequest()
			defer fasthttp.ReleaseRequest(req)
			req.SetRequestURI("http://collector/collect")
			req.Header.SetMethod("POST")
			req.Header.SetContentType("text/plain;charset=UTF-8")
			req.Header.SetUserAgent(harness.BrowserUA)
			req.SetBodyString(body)
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			do := func(c *client, want int) time.Duration {
				start := time.Now()
				if err := c.Do(req, resp); err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode() != want {
					b.Fatalf("status %d, want %d: %s", resp.StatusCode(), want, resp.Body())
				}
				return time.Since(start)
			}
			var tRung, tBare time.Duration
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				// Alternated, and in both orders, so drift hits both alike.
				if i%2 == 0 {
					tBare += do(bareC, 202)
					tRung += do(rung, 503)
				} else {
					tRung += do(rung, 503)
					tBare += do(bareC, 202)
				}
			}
			b.ReportMetric(float64(tRung.Nanoseconds())/float64(b.N), tc.name+"-ns/req")
			b.ReportMetric(float64(tBare.Nanoseconds())/float64(b.N), "bare-ns/req")
			b.ReportMetric(float64(tRung)/float64(tBare), tc.name+"/bare")
		})
	}
}

// client is one connection to a server in memory, sending requests in turn.
type client struct {
	conn net.Conn
	w    *bufio.Writer
	r    *bufio.Reader
}

// dialInMemory serves srv on an in-memory listener and returns a client of it.
func dialInMemory(tb testing.TB, srv *fasthttp.Server) *client {
	tb.Helper()
	ln := fasthttputil.NewInmemoryListener()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	conn, err := ln.Dial()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		conn.Close()
		srv.Shutdown()
		<-served
	})
	return &client{conn: conn, w: bufio.NewWriter(conn), r: bufio.NewReader(conn)}
}

// Do sends req and reads its answer into resp.
func (c *client) Do(req *fasthttp.Request, resp *fasthttp.Response) error {
	if err := req.Write(c.w); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	return resp.Read(c.r)
}
