package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// TestCountedGap cuts a Write between its raw rows and its rollups (the failpoint
// cancels it there), and follows the signals through what a writer that gets them
// again relies on: Landed says they are held but not counted, Resume leaves them out,
// Uncounted lists them; once a later Write carries them in Counted, they are counted
// everywhere and their raw rows are still stored once.
func TestCountedGap(t *testing.T) {
	ctx := context.Background()
	var cut context.CancelFunc
	c, err := Open(ctx, testDSN(), Options{AfterSignals: func() {
		if cut != nil {
			cut()
		}
	}}, metrics.NewSet())
	if err != nil {
		t.Fatalf("ClickHouse is required for this test (start it with .ci/services): %v", err)
	}
	t.Cleanup(func() { c.DropDatabase(context.Background()); c.Close() })

	now := time.Now().UnixMilli()
	sig := func(i int) schemas.Signal {
		return schemas.Signal{Type: schemas.TypePageview, ReceivedAt: now + int64(i), Site: "gap.example",
			AnonymousID: fmt.Sprintf("visitor-%d", i%3), EventID: fmt.Sprintf("e%d", i), URL: "https://gap.example/", Path: "/"}
	}
	landing := []sink.LandingCell{{LandingKey: sink.LandingKey{Site: "gap.example", HourMs: sink.HourMs(now), LandingPath: "/"},
		Cell: 1, Version: 1, Sessions: 3}}
	whole := &sink.Batch{Signals: []schemas.Signal{sig(0), sig(1), sig(2)}, SessionMs: []int64{now, now + 1, now + 2}, Landing: landing}
	if err := c.Write(ctx, whole); err != nil {
		t.Fatal(err)
	}
	half := &sink.Batch{Signals: []schemas.Signal{sig(3), sig(4), sig(5)}, SessionMs: []int64{now, now + 1, now + 2},
		Landing: []sink.LandingCell{{LandingKey: landing[0].LandingKey, Cell: 1, Version: 2, Sessions: 3}}}
	wctx, cancel := context.WithCancel(ctx)
	cut = cancel
	if err := c.Write(wctx, half); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write cut after its raw rows: %v, want it cancelled", err)
	}
	cut = nil

	all := []schemas.Signal{sig(0), sig(1), sig(2), sig(3), sig(4), sig(5)}
	check := func(when string, want map[string]bool) {
		t.Helper()
		got, err := c.Landed(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range all {
			if counted, ok := got[sink.KeyOf(&g)]; !ok || counted != want[g.EventID] {
				t.Errorf("%s: Landed(%s) = %v, held %v; want held, counted %v", when, g.EventID, counted, ok, want[g.EventID])
			}
		}
		left, err := c.Uncounted(ctx, time.Hour.Milliseconds())
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range left {
			if want[g.EventID] {
				t.Errorf("%s: Uncounted lists %s, which is counted", when, g.EventID)
			}
		}
		var restored []string
		if _, err := c.Resume(ctx, time.Hour.Milliseconds(), sink.ResumeScope{}, func(chunk []sink.Resume) error {
			for _, r := range chunk {
				for _, g := range r.Signals {
					restored = append(restored, g.EventID)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, id := range restored {
			if !want[id] {
				t.Errorf("%s: Resume restores %s, whose rollups are not stored", when, id)
			}
			n++
		}
		counted := 0
		for _, w := range want {
			if w {
				counted++
			}
		}
		if n != counted || len(left) != len(all)-counted {
			t.Errorf("%s: Resume restores %d signals, Uncounted lists %d; want %d and %d", when, n, len(left), counted, len(all)-counted)
		}
	}
	check("cut", map[string]bool{"e0": true, "e1": true, "e2": true})

	// The writer that gets them again counts them without storing them again.
	again := &sink.Batch{Counted: []schemas.Signal{sig(3), sig(4), sig(5)}, Landing: half.Landing}
	if err := c.Write(ctx, again); err != nil {
		t.Fatal(err)
	}
	check("counted again", map[string]bool{"e0": true, "e1": true, "e2": true, "e3": true, "e4": true, "e5": true})
	stored, err := c.Signals(ctx, 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(all) {
		t.Errorf("%d raw rows stored, want %d", len(stored), len(all))
	}
}

// BenchmarkLanded is the price of asking the store about every batch (an aggregator
// does, so that a client's resend is stored once) against writing the batch: a batch
// of 5,000 signals of as many visitors, half of them resends, over 200,000 stored rows.
// Compare landed with write in the same run.
func BenchmarkLanded(b *testing.B) {
	ctx := context.Background()
	c, err := Open(ctx, testDSN(), Options{}, metrics.NewSet())
	if err != nil {
		b.Fatalf("ClickHouse is required: %v", err)
	}
	b.Cleanup(func() { c.DropDatabase(context.Background()); c.Close() })
	now := time.Now().UnixMilli()
	batch := func(from int) []schemas.Signal {
		out := make([]schemas.Signal, 5000)
		for i := range out {
			n := from + i
			out[i] = schemas.Signal{Type: schemas.TypePageview, ReceivedAt: now - 3600_000 + int64(n), Site: "bench.example",
				AnonymousID: fmt.Sprintf("visitor-%06d", n%40_000), EventID: fmt.Sprintf("event-%09d", n),
				URL: "https://bench.example/p", Path: "/p"}
		}
		return out
	}
	for from := 0; from < 200_000; from += 5000 {
		if err := c.Write(ctx, &sink.Batch{Signals: batch(from)}); err != nil {
			b.Fatal(err)
		}
	}
	ask := batch(197_500) // half stored, half new
	b.Run("landed", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Landed(ctx, ask); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("write", func(b *testing.B) {
		from := 1_000_000
		for b.Loop() {
			if err := c.Write(ctx, &sink.Batch{Signals: batch(from)}); err != nil {
				b.Fatal(err)
			}
			from += 5000
		}
	})
}

// TestMissing: an insert retried after a failure whose outcome is unclear sends only
// the rows the table does not hold yet, with their sessions.
func TestMissing(t *testing.T) {
	ctx := context.Background()
	c := openTest(t)
	now := time.Now().UnixMilli()
	sig := func(i int) schemas.Signal {
		return schemas.Signal{Type: schemas.TypePageview, ReceivedAt: now + int64(i), Site: "retry.example",
			AnonymousID: fmt.Sprintf("visitor-%d", i%2), EventID: fmt.Sprintf("e%d", i), URL: "https://retry.example/", Path: "/"}
	}
	if err := c.Write(ctx, &sink.Batch{Signals: []schemas.Signal{sig(0), sig(1), sig(2)}}); err != nil {
		t.Fatal(err)
	}
	b := &sink.Batch{Signals: []schemas.Signal{sig(0), sig(3), sig(1), sig(4)}, SessionMs: []int64{10, 30, 11, 40}}
	rest, err := c.missing(ctx, dest{c.conn, c.db + ".signals"}, b, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Signals) != 2 || rest.Signals[0].EventID != "e3" || rest.Signals[1].EventID != "e4" ||
		rest.SessionOf(0) != 30 || rest.SessionOf(1) != 40 {
		t.Errorf("missing: %+v", rest)
	}
}
