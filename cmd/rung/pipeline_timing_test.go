package main

import (
	"context"
	"fmt"
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
	"github.com/rungdev/rung/collector"
	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink/discard"
)

// pipelineBodies are the request bodies bench/wrk/collect.lua sends: 1024 of them
// rotating, n 326-byte pageviews each, visitor and event_id numbered as there.
func pipelineBodies(n int) []string {
	const tmpl = `{"type":"pageview","site":"example.com","anonymous_id":"visitor-%08d","event_id":"0d6f7a3e-5a0b-4c1e-9c43-%012d",` +
		`"url":"https://example.com/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring","referrer":"https://www.google.com/","props":{"plan":"pro"}}`
	out := make([]string, 1024)
	for i := range out {
		sigs := make([]string, n)
		for j := range sigs {
			k := (i+1)*n + j + 1
			sigs[j] = fmt.Sprintf(tmpl, k%100000, k)
		}
		out[i] = sigs[0]
		if n > 1 {
			out[i] = "[" + strings.Join(sigs, ",") + "]"
		}
	}
	return out
}

// pipeline is what `rung serve --sink discard` wires, here in process: the collector, the default buffer
// flushing through the sessionizer into the discard sink.
type pipeline struct {
	srv  *collector.Server
	buf  *buffer.Buffer
	sink *discard.Sink
	done chan error
}

func newPipeline(tb testing.TB) *pipeline {
	tb.Helper()
	reg, err := schemas.NewRegistry()
	if err != nil {
		tb.Fatal(err)
	}
	set := metrics.NewSet()
	agg, err := preagg.New(preagg.Config{}, set)
	if err != nil {
		tb.Fatal(err)
	}
	p := &pipeline{sink: discard.New(set), done: make(chan error, 1)}
	p.buf = buffer.New(buffer.Config{}, agg.FlushTo(p.sink), set)
	go func() { p.done <- p.buf.Run(context.Background()) }()
	p.srv = collector.New(collector.Config{Admits: p.buf.Admits}, reg, p.buf, p.sink.Ping, set, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return p
}

// drain closes the buffer and waits until every signal has reached the sink.
func (p *pipeline) drain(tb testing.TB) {
	tb.Helper()
	p.buf.Close()
	if err := <-p.done; err != nil {
		tb.Fatal(err)
	}
}

// cpuTime is the CPU this process has used, on every thread: the handler's, the
// flushers' and the garbage collector's alike.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPipeline is the per-signal cost of the whole hot path in steady state: the
// handler (decode, validate, enrich, copy into the buffer, answer), then the buffer's flushers
// taking batches through the sessionizer into the discard sink, with memory reused as
// in production. Requests come one at a time, as bench/wrk/collect.lua sends them; the
// flushers run beside on their own goroutines, and the timer stops only once every
// signal has reached the sink. ns/signal is wall time; cpu-ns/signal is the process's
// CPU time over the same span, every goroutine and the GC included, which a loaded
// machine disturbs less.
func BenchmarkPipeline(b *testing.B) {
	for _, per := range []int{1, 50} {
		name := "single"
		if per > 1 {
			name = fmt.Sprintf("batch%d", per)
		}
		bodies := pipelineBodies(per)
		ctxs := make([]*fasthttp.RequestCtx, len(bodies))
		for i, body := range bodies {
			ctxs[i] = harness.CollectRequest(body)
		}
		b.Run(name, func(b *testing.B) {
			p := newPipeline(b)
			// Warm up first (every visitor has its session, the flushers' batches and
			// the buffer's chunks have grown): what follows is the steady state, not
			// the first seconds of a fresh process.
			warm := max(1, 50_000/(len(ctxs)*per)) * len(ctxs)
			for i := range warm {
				p.serve(b, ctxs[i%len(ctxs)])
			}
			want := uint64(warm * per)
			runtime.GC()
			b.ReportAllocs()
			b.SetBytes(int64(len(bodies[0])))
			cpu := cpuTime(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.serve(b, ctxs[i%len(ctxs)])
			}
			p.drain(b)
			b.StopTimer()
			cpu = cpuTime(b) - cpu
			want += uint64(b.N * per)
			if got := p.sink.Discarded(); got != want {
				b.Fatalf("the sink got %d signals, want %d", got, want)
			}
			n := float64(b.N * per)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/signal")
			b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/signal")
		})
	}
}

// serve answers one request, again while the buffer is full (the flushers catch up).
func (p *pipeline) serve(tb testing.TB, ctx *fasthttp.RequestCtx) {
	for {
		ctx.Response.Reset()
		p.srv.Handler(ctx)
		switch ctx.Response.StatusCode() {
		case fasthttp.StatusAccepted:
			return
		case fasthttp.StatusServiceUnavailable:
			runtime.Gosched()
		default:
			tb.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}
