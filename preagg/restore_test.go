package preagg

import (
	"context"
	"fmt"
	"testing"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// writeOpen stores n visitors with an open session each, visitor i last active 5 s
// before visitor i-1, and returns their ids.
func writeOpen(t *testing.T, st store, n int) []string {
	t.Helper()
	newest := testBase + 2*hour
	b := &sink.Batch{}
	anons := make([]string, n)
	for i := range anons {
		anons[i] = fmt.Sprintf("restore-%03d", i)
		if i%4 == 0 {
			anons[i] += "-é-访客"
		}
		last := newest - int64(i)*5000
		for j, at := range []int64{last - 1000, last} {
			b.Signals = append(b.Signals, schemas.Signal{Type: schemas.TypePageview, ReceivedAt: at, Site: "a.example",
				AnonymousID: anons[i], EventID: fmt.Sprintf("%s-%d", anons[i], j), URL: "https://a.example/x", Path: "/x"})
			b.SessionMs = append(b.SessionMs, last-1000)
		}
	}
	if err := st.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return anons
}

// restoredIDs returns the visitors in memory, checking each shard is in order of last
// activity (closing and eviction walk it from the front) and within its share.
func restoredIDs(t *testing.T, a *Aggregator) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for i := range a.shards {
		sh := &a.shards[i]
		if sh.n > a.perShard {
			t.Errorf("shard %d holds %d visitors, over its share %d", i, sh.n, a.perShard)
		}
		var last int64
		for v := sh.front; v != nil; v = v.next {
			if v.s.last < last {
				t.Errorf("shard %d: %s (last %d) after a visitor last active at %d", i, v.anon, v.s.last, last)
			}
			last = v.s.last
			ids[v.anon] = i
		}
	}
	return ids
}

// An aggregator that owns some partitions restores exactly their visitors, and they
// together restore everyone.
func TestRestorePartitions(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			anons := writeOpen(t, st, 200)
			cfg := Config{Shards: 8, Lanes: 2}
			all := map[string]bool{}
			for _, owned := range [][]int{{0, 1, 2}, {3}, {4, 5, 6, 7}} {
				a := newAggregator(t, cfg)
				n, err := a.Restore(context.Background(), st, owned)
				if err != nil {
					t.Fatal(err)
				}
				in := map[int]bool{}
				for _, p := range owned {
					in[p] = true
				}
				want := 0
				for _, id := range anons {
					if in[buffer.ShardOf(id, cfg.Shards)] {
						want++
					}
				}
				got := restoredIDs(t, a)
				if n != want || len(got) != want || a.Open() != want {
					t.Errorf("partitions %v: restored %d (%d in memory, %d open), want %d", owned, n, len(got), a.Open(), want)
				}
				for id, sh := range got {
					if !in[sh] || buffer.ShardOf(id, cfg.Shards) != sh {
						t.Errorf("partitions %v: %s restored into shard %d", owned, id, sh)
					}
					all[id] = true
				}
			}
			if len(all) != len(anons) {
				t.Errorf("the partitions together restored %d of %d visitors", len(all), len(anons))
			}
			if _, err := newAggregator(t, cfg).Restore(context.Background(), st, []int{8}); err == nil {
				t.Error("Restore accepted partition 8 of 8")
			}
		})
	}
}

// Restore keeps to MaxOpenSessions, the most recently active first, and counts the
// sessions it left out.
func TestRestoreMaxOpenSessions(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st := b.open(t)
			anons := writeOpen(t, st, 200)
			a := newAggregator(t, Config{Shards: 4, Lanes: 2, MaxOpenSessions: 40})
			n, err := a.Restore(context.Background(), st, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := restoredIDs(t, a)
			if n != len(got) || n > 40 || n < 20 {
				t.Fatalf("restored %d (%d in memory) with MaxOpenSessions 40", n, len(got))
			}
			t.Logf("restored %d, skipped %d", n, a.skipped.Get())
			if skipped := a.skipped.Get(); n+int(skipped) != len(anons) {
				t.Errorf("restored %d and counted %d skipped of %d", n, skipped, len(anons))
			}
			for i, id := range anons {
				if _, ok := got[id]; ok && i >= 40 {
					t.Errorf("restored %s, not among the 40 most recently active", id)
				}
			}
		})
	}
}
