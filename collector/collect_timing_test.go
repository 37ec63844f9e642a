package collector

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"syscall"
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

// BenchmarkCollect measures POST /collect from parsed request to 202: decode, validate,
// enrich, copy into the buffer, answer. The network is not in it (see
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
			ctx := harness.CollectRequest(c.body)
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

// TestCollectAllocs pins the handler's allocations: none for signals that carry their
// own event_id. The intake copies what it keeps; the buffer's own allocations are pinned
// by buffer.TestPushAllocs.
func TestCollectAllocs(t *testing.T) {
	harness.SkipAllocsUnderRace(t)
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	ready := func(context.Context) error { return nil }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := New(Config{}, reg, discard{}, ready, metrics.NewSet(), log)
	// The per-address limit hashes the address with the day's salt on every request.
	limited := New(Config{RateIP: 1e9, RateIPBurst: 1e9}, reg, discard{}, ready, metrics.NewSet(), log)
	for _, c := range []struct {
		srv  *Server
		body string
	}{{srv, benchSignal}, {srv, benchBatch(50)}, {limited, benchSignal}} {
		srv := c.srv
		ctx := harness.CollectRequest(c.body)
		allocs := testing.AllocsPerRun(200, func() {
			ctx.Response.Reset()
			srv.Handler(ctx)
		})
		if ctx.Response.StatusCode() != 202 {
			t.Fatalf("status %d", ctx.Response.StatusCode())
		}
		if allocs > 0 {
			t.Errorf("POST /collect of %d bytes: %.1f allocations, want none", len(c.body), allocs)
		}
	}
}

// invalidSignal is benchSignal with a url the schema's pattern refuses: it fails a schema
// check, the rejection that sends a signal to the oracle for its report.
var invalidSignal = strings.Replace(benchSignal, `"url":"https://`, `"url":"ftp://`, 1)

func batchOf(signal string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(signal+",", n), ",") + "]"
}

// collect500 answers a 500-signal body (the default MaxBatch) b.N times.
func collect500(b *testing.B, signal string, status int) {
	srv, stop := newBenchServer(b)
	defer stop()
	body := batchOf(signal, 500)
	ctx := harness.CollectRequest(body)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		ctx.Response.Reset()
		srv.Handler(ctx)
		if ctx.Response.StatusCode() != status {
			b.Fatalf("status %d, want %d: %.200s", ctx.Response.StatusCode(), status, ctx.Response.Body())
		}
	}
}

// BenchmarkCollect500 is the pair behind TestRejectedCost: a full batch of valid
// signals against one of signals that all fail a schema check.
func BenchmarkCollect500(b *testing.B) {
	b.Run("valid", func(b *testing.B) { collect500(b, benchSignal, 202) })
	b.Run("invalid", func(b *testing.B) { collect500(b, invalidSignal, 400) })
}

// TestRejectedCost holds a rejected signal to a small multiple of an accepted one's cost,
// so a flood of invalid batches costs about what one of valid ones does. Both are
// measured in the same run and compared as ratios: bytes allocated, which the load on
// the machine cannot change, and the process's CPU time, in alternating rounds of which
// the cheapest of each counts. With the oracle explaining every rejection, both bounds
// fail.
func TestRejectedCost(t *testing.T) {
	srv, stop := newBenchServer(t)
	defer stop()
	valid, invalid := harness.CollectRequest(batchOf(benchSignal, 500)), harness.CollectRequest(batchOf(invalidSignal, 500))
	run := func(ctx *fasthttp.RequestCtx, status int) {
		ctx.Response.Reset()
		srv.Handler(ctx)
		if ctx.Response.StatusCode() != status {
			t.Fatalf("status %d, want %d: %.200s", ctx.Response.StatusCode(), status, ctx.Response.Body())
		}
	}
	allocated := func(ctx *fasthttp.RequestCtx, status int) float64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range 10 {
			run(ctx, status)
		}
		runtime.ReadMemStats(&after)
		return float64(after.TotalAlloc - before.TotalAlloc)
	}
	cpu := func(ctx *fasthttp.RequestCtx, status int) time.Duration {
		start := processCPU(t)
		for range 10 {
			run(ctx, status)
		}
		return processCPU(t) - start
	}
	run(valid, 202)
	run(invalid, 400)
	bytesRatio := allocated(invalid, 400) / allocated(valid, 202)
	bestValid, bestInvalid := time.Duration(1<<62), time.Duration(1<<62)
	for range 9 {
		bestValid = min(bestValid, cpu(valid, 202))
		bestInvalid = min(bestInvalid, cpu(invalid, 400))
	}
	cpuRatio := float64(bestInvalid) / float64(bestValid)
	t.Logf("500 signals, invalid/valid: bytes allocated %.1f, CPU %.1f (%v/%v per 10 batches)", bytesRatio, cpuRatio, bestInvalid, bestValid)
	if bytesRatio > 8 {
		t.Errorf("a batch of rejected signals allocates %.1f times what one of accepted signals does, want at most 8", bytesRatio)
	}
	if cpuRatio > 12 {
		t.Errorf("a batch of rejected signals costs %.1f times the CPU of one of accepted signals, want at most 12", cpuRatio)
	}
}

// processCPU is the CPU time the test process has used: unlike the wall clock, it does
// not grow while other processes hold the machine's cores.
func processCPU(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
