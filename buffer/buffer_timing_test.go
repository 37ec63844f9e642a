package buffer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
)

// BenchmarkPush measures Push alone on many goroutines: hash, one shard lock, a copy into a chunk.
// Flushing runs concurrently and only discards.
func BenchmarkPush(b *testing.B) {
	buf := New(Config{BatchSize: 5000, FlushInterval: 10 * time.Millisecond, MaxBytes: 1 << 30}, func(context.Context, []schemas.Signal) error { return nil }, metrics.NewSet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- buf.Run(ctx) }()
	ids := make([]schemas.Signal, 1024)
	bodies := make([]string, len(ids))
	for i := range ids {
		bodies[i], ids[i] = bodySig(fmt.Sprintf("visitor-%08d", i), i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			for buf.push(bodies[i&1023], &ids[i&1023], 0) != nil { // full: let the flushers catch up
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
	body, s := bodySig("visitor-00000001", 0)
	b.ReportAllocs()
	b.ResetTimer()
	got := 0
	go func() {
		for i := 0; i < b.N; i++ {
			for buf.push(body, &s, 0) != nil {
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
