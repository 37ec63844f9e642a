package collector

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

// benchSignal is a realistic 326-byte pageview, the size the bare-server baseline uses.
const benchSignal = `{"type":"pageview","site":"example.com","anonymous_id":"a1b2c3d4e5f6a7b8","event_id":"0d6f7a3e-5a0b-4c1e-9c43-1f2e3d4c5b6a",` +
	`"url":"https://example.com/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring","referrer":"https://www.google.com/","props":{"plan":"pro"}}`

func benchBatch(n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(benchSignal+",", n), ",") + "]"
}

// newBenchServer is a collector whose buffer flushes into nothing: the handler and the
// buffer are what is measured.
func newBenchServer(tb testing.TB) (*Server, func()) {
	tb.Helper()
	return newBenchServerWith(tb, Config{})
}

func newBenchServerWith(tb testing.TB, cfg Config) (*Server, func()) {
	tb.Helper()
	reg, err := schemas.NewRegistry()
	if err != nil {
		tb.Fatal(err)
	}
	set := metrics.NewSet()
	buf := buffer.New(buffer.Config{MaxBytes: 1 << 30, FlushInterval: 10 * time.Millisecond},
		func(context.Context, []schemas.Signal) error { return nil }, set)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- buf.Run(ctx) }()
	srv := New(cfg, reg, buf, func(context.Context) error { return nil }, set, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return srv, func() { buf.Close(); <-done; cancel() }
}

func newCollectCtx(body string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/collect")
	ctx.Request.Header.SetContentType("text/plain;charset=UTF-8")
	ctx.Request.Header.SetUserAgent("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36")
	ctx.Request.SetBodyString(body)
	return &ctx
}

// BenchmarkCollect measures POST /collect from parsed request to 202: copy, decode,
// validate, enrich, push into the buffer, answer. The network is not in it (see
// BENCHMARKS.md for the same over loopback against a bare fasthttp server).
func BenchmarkCollect(b *testing.B) {
	for _, c := range []struct {
		name    string
		body    string
		signals int
	}{{"single", benchSignal, 1}, {"batch50", benchBatch(50), 50}} {
		b.Run(c.name, func(b *testing.B) {
			srv, stop := newBenchServer(b)
			defer stop()
			ctx := newCollectCtx(c.body)
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			for b.Loop() {
				ctx.Response.Reset()
				srv.Handler(ctx)
				if ctx.Response.StatusCode() != 202 {
					b.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
				}
			}
			b.ReportMetric(float64(c.signals)*float64(b.N)/b.Elapsed().Seconds(), "signals/s")
		})
	}
}

// TestCollectAllocs pins the hot path's allocations: the copied body, and nothing else
// for signals that carry their own event_id.
func TestCollectAllocs(t *testing.T) {
	harness.SkipAllocsUnderRace(t)
	srv, stop := newBenchServer(t)
	defer stop()
	// The per-address limit hashes the address with the day's salt on every request.
	limited, stopLimited := newBenchServerWith(t, Config{RateIP: 1e9, RateIPBurst: 1e9})
	defer stopLimited()
	for _, c := range []struct {
		srv  *Server
		body string
		max  float64
	}{{srv, benchSignal, 1}, {srv, benchBatch(50), 1}, {limited, benchSignal, 1}} {
		srv := c.srv
		ctx := newCollectCtx(c.body)
		allocs := testing.AllocsPerRun(200, func() {
			ctx.Response.Reset()
			srv.Handler(ctx)
		})
		if ctx.Response.StatusCode() != 202 {
			t.Fatalf("status %d", ctx.Response.StatusCode())
		}
		if allocs > c.max {
			t.Errorf("POST /collect of %d bytes: %.1f allocations, want at most %.0f", len(c.body), allocs, c.max)
		}
	}
}
