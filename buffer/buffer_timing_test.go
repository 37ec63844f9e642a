package buffer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

// BenchmarkPush measures Push alone on many goroutines: the charge, hash, one shard lock,
// a copy into a chunk.
// Flushing runs concurrently and only discards.
func BenchmarkPush(b *testing.B) {
	buf := New(Config{BatchSize: 5000, FlushInterval: 10 * time.Millisecond, MaxBytes: 1 << 30}, func(context.Context, []schemas.Signal) error { return nil }, metrics.NewSet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- buf.Run(ctx) }()
	ids := make([]schemas.Signal, 1024)
	for i := range ids {
		ids[i] = sig(fmt.Sprintf("visitor-%08d", i), i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			for buf.Push(&ids[i&1023]) != nil { // full: let the flushers catch up
			}
			i++
		}
	})
	b.StopTimer()
	buf.Close()
	<-done
	cancel()
}

// BenchmarkPushDrain measures a signal's whole trip through the buffer: Push, then a
// flusher takes it into a batch and hands it on.
func BenchmarkPushDrain(b *testing.B) {
	delivered := make(chan int, 1024)
	buf := New(Config{BatchSize: 5000, FlushInterval: time.Millisecond, MaxBytes: 1 << 30},
		func(_ context.Context, batch []schemas.Signal) error { delivered <- len(batch); return nil }, metrics.NewSet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- buf.Run(ctx) }()
	s := sig("visitor-00000001", 0)
	b.ReportAllocs()
	b.ResetTimer()
	got := 0
	go func() {
		for i := 0; i < b.N; i++ {
			for buf.Push(&s) != nil {
			}
		}
		buf.Close()
	}()
	for got < b.N {
		got += <-delivered
	}
	b.StopTimer()
	<-done
	cancel()
}

// TestPushAllocs pins the buffer's allocations in steady state: none. A signal is copied
// into a chunk, and chunks go back to a pool once their batch is delivered; only a
// signal too big for an arena gets memory of its own.
func TestPushAllocs(t *testing.T) {
	harness.SkipAllocsUnderRace(t)
	b := New(Config{FlushInterval: time.Hour}, func(context.Context, []schemas.Signal) error { return nil }, metrics.NewSet())
	signals := make([]*schemas.Signal, 1000)
	for i := range signals {
		s := sig(fmt.Sprintf("visitor-%08d", i%300), i)
		s.URL = "https://example.com/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring"
		signals[i] = &s
	}
	errs := make([]error, 50)
	cycle := func() {
		for i := 0; i < len(signals); i += 50 {
			b.Append(context.Background(), signals[i:i+50], errs)
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, f := range b.flushers {
			for f.due(true) {
				f.flushOnce(context.Background())
			}
		}
	}
	cycle() // the pool fills
	if allocs := testing.AllocsPerRun(20, cycle); allocs > 0 {
		t.Errorf("%.1f allocations for %d signals pushed and flushed, want none", allocs, len(signals))
	}
	if n := b.used.Load(); n != 0 {
		t.Errorf("%d bytes charged with nothing held", n)
	}
}
