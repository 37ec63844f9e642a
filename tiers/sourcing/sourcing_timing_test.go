package sourcing_test

import (
	"context"
	"testing"
	"time"

	"github.com/rungdev/rung/stitch/sqldb/sqltest"
	"github.com/rungdev/rung/tiers/sourcing"
)

// BenchmarkSourcing: the write is one append with its version check; the reads fold a
// 1000-event stream from scratch, from a snapshot (at most 99 events past it), and as
// of a past instant.
func BenchmarkSourcing(b *testing.B) {
	ctx := context.Background()
	for _, s := range sqltest.Backends(b) {
		st := store(b, s)
		b.Run(s.Name+"/write-append", func(b *testing.B) {
			b.ReportAllocs()
			var v int64
			stream := "bench-" + sqltest.Suffix() // -count repeats this function on the same store
			for b.Loop() {
				var err error
				if v, err = st.Append(ctx, stream, v, ev("deal_amount_changed", mar(2), `{"delta_cents":1}`)); err != nil {
					b.Fatal(err)
				}
			}
		})
		history(b, st) // deal-7: 6 events
		v, _ := st.Version(ctx, "deal-7")
		batch := make([]sourcing.Event, 0, 100)
		for v < 1000 {
			batch = batch[:0]
			for range 100 {
				batch = append(batch, ev("deal_amount_changed", mar(31).AddDate(0, 1, 0), `{"delta_cents":1}`))
			}
			var err error
			if v, err = st.Append(ctx, "deal-7", v, batch...); err != nil {
				b.Fatal(err)
			}
		}
		full := dealProjection(1, false, 0)
		snap := dealProjection(2, false, 100)
		if _, err := sourcing.Load(ctx, st, snap, "deal-7"); err != nil { // writes the snapshots once
			b.Fatal(err)
		}
		b.Run(s.Name+"/read-replay-1000", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got, err := sourcing.Load(ctx, st, full, "deal-7"); err != nil || got.Replayed != int(v) {
					b.Fatalf("%+v %v", got, err)
				}
			}
		})
		b.Run(s.Name+"/read-from-snapshot", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got, err := sourcing.Load(ctx, st, snap, "deal-7"); err != nil || got.Snapshot == 0 {
					b.Fatalf("%+v %v", got, err)
				}
			}
		})
		b.Run(s.Name+"/read-as-of", func(b *testing.B) {
			b.ReportAllocs()
			at := time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC)
			for b.Loop() {
				if _, err := sourcing.AsOf(ctx, st, snap, "deal-7", at); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
