package level_test

import (
	"context"
	"testing"

	"github.com/rungdev/rung/tiers/level"
)

// BenchmarkAsyncEmit is the cost the request pays to hand an event to the async level
// (the handler here does nothing, so workers keep the queue short).
func BenchmarkAsyncEmit(b *testing.B) {
	a, err := level.NewAsync(level.AsyncConfig{Capacity: 1 << 16, Workers: 1},
		func(context.Context, int) error { return nil })
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for a.Emit(i) != nil { // full: let the worker catch up
		}
	}
	b.StopTimer()
	if st := a.Shutdown(context.Background()); st.Lost != 0 {
		b.Fatalf("lost %d on a clean shutdown", st.Lost)
	}
}

func BenchmarkSyncEmit(b *testing.B) {
	s := level.NewSync(func(context.Context, int) error { return nil })
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := s.Emit(ctx, i); err != nil {
			b.Fatal(err)
		}
	}
}
