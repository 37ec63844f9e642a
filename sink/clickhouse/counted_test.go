package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// cutter is a failpoint (Options.AfterSignals, BeforeLanding) that cancels the Write
// a test armed it for, and does nothing when unarmed.
type cutter struct{ cancel context.CancelFunc }

func (c *cutter) fire() {
	if c.cancel != nil {
		c.cancel()
	}
}

// TestCountedGap cuts a Write between its raw rows and its rollups (the failpoint
// cancels it there), and follows the signals through what a writer that gets them
// again relies on: Landed says they are held but not counted, Resume leaves them out,
// Uncounted lists them; once a later Write carries them in Counted, they are counted
// everywhere and their raw rows are still stored once.
func TestCountedGap(t *testing.T) {
	ctx := context.Background()
	var cut cutter
	c := openWith(t, Options{AfterSignals: cut.fire}, metrics.NewSet())

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
	// The cut flush's signals were received e3, e4, e5 but stand in their timelines the
	// other way round (a client's clock): the order they are counted in.
	late := func(i int) schemas.Signal {
		g := sig(i)
		g.EventAt = now + 100 - int64(i)
		return g
	}
	half := &sink.Batch{Signals: []schemas.Signal{late(3), late(4), late(5)}, SessionMs: []int64{now, now + 1, now + 2},
		Landing: []sink.LandingCell{{LandingKey: landing[0].LandingKey, Cell: 1, Version: 2, Sessions: 3}}}
	wctx, cancel := context.WithCancel(ctx)
	cut.cancel = cancel
	if err := c.Write(wctx, half); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write cut after its raw rows: %v, want it cancelled", err)
	}
	cut.cancel = nil

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
	// Uncounted gives them in that order, so that a recount in several flushes does not
	// find one of a visitor's signals later than the next it counted.
	left, err := c.Uncounted(ctx, time.Hour.Milliseconds())
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, g := range left {
		order = append(order, g.EventID)
	}
	if got := strings.Join(order, ","); got != "e5,e4,e3" {
		t.Errorf("Uncounted lists %s, want e5,e4,e3 (by event time, as they were counted)", got)
	}

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
	// The flushes that stored what they counted recorded it on the raw rows alone; the
	// keys counted again have counted rows.
	keyed, err := c.conn.Query(ctx, "SELECT event_id FROM "+c.db+".counted WHERE event_id != '' ORDER BY event_id")
	if err != nil {
		t.Fatal(err)
	}
	defer keyed.Close()
	var ids []string
	for keyed.Next() {
		var id string
		if err := keyed.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if got := strings.Join(ids, ","); got != "e3,e4,e5" {
		t.Errorf("counted rows of %s, want e3,e4,e5 (the keys counted again)", got)
	}
}

// A flush without rollup rows cut after its raw rows is not counted either: the
// sessionizer rolls back what it did with the signals (a session's last activity), so
// a writer that gets them again must count them, and does, once.
func TestCountedCutWithoutRollups(t *testing.T) {
	ctx := context.Background()
	var cut cutter
	c := openWith(t, Options{AfterSignals: cut.fire}, metrics.NewSet())
	now := time.Now().UnixMilli()
	signals := []schemas.Signal{{Type: schemas.TypePageview, ReceivedAt: now, Site: "cut.example", AnonymousID: "visitor",
		EventID: "e0", URL: "https://cut.example/", Path: "/"}}
	wctx, cancel := context.WithCancel(ctx)
	cut.cancel = cancel
	if err := c.Write(wctx, &sink.Batch{Signals: signals, SessionMs: []int64{now}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write cut after its raw rows: %v, want it cancelled", err)
	}
	cut.cancel = nil
	check := func(when string, want bool) {
		t.Helper()
		landed, err := c.Landed(ctx, signals)
		if err != nil {
			t.Fatal(err)
		}
		if counted, held := landed[sink.KeyOf(&signals[0])]; !held || counted != want {
			t.Errorf("%s: Landed says held %v, counted %v; want held, counted %v", when, held, counted, want)
		}
	}
	check("cut", false)
	if err := c.Write(ctx, &sink.Batch{Counted: signals}); err != nil {
		t.Fatal(err)
	}
	check("counted again", true)
}

// TestCountedRule stores raw rows, counted rows and markers as writers of every kind
// leave them (a flush that counts what it stores, one cut before its landing insert, a
// recount, rows stored before the flush column or the markers, a signal stored twice)
// and checks that Landed, Uncounted and Resume agree, key by key, on which are counted.
func TestCountedRule(t *testing.T) {
	ctx := context.Background()
	c := openTest(t)
	c.countedSince = 0 // as in a database made with the counted table
	const done, cut, redone, uncut = 0xd0e, 0xc07, 0x4ed0e, 0x4c07
	cases := []struct {
		id      string
		raw     []uint64 // the flush of each raw row
		counted []uint64 // the flush of each counted row
		want    bool
	}{
		{"flush-committed", []uint64{done}, nil, true},
		{"flush-cut", []uint64{cut}, nil, false},
		{"old-confirmed", []uint64{0}, []uint64{0}, true},
		{"old-committed", []uint64{0}, []uint64{redone}, true},
		{"old-cut", []uint64{0}, []uint64{uncut}, false},
		{"old-without-key", []uint64{0}, nil, false},
		{"cut-then-recounted", []uint64{cut}, []uint64{redone}, true},
		{"cut-then-recount-cut", []uint64{cut}, []uint64{uncut}, false},
		{"stored-twice", []uint64{cut, done}, nil, true},
		{"old-flush-without-landing", []uint64{cut}, []uint64{0}, true},
	}
	now := time.Now().UnixMilli()
	var all []schemas.Signal
	for i, k := range cases {
		g := schemas.Signal{Type: schemas.TypePageview, ReceivedAt: now + int64(i), Site: "rule.example",
			AnonymousID: "visitor-" + k.id, EventID: k.id, URL: "https://rule.example/", Path: "/"}
		all = append(all, g)
		for j, f := range k.raw {
			if err := c.conn.Exec(ctx, "INSERT INTO "+c.db+".signals (date, received_at, received_ms, event_id, type, site, "+
				"anonymous_id, url, path, session_ms, event_ms, seq, flush) SELECT toDate(toDateTime(?)), toDateTime(?), ?, ?, 'pageview', ?, ?, ?, ?, ?, ?, ?, ?",
				now/1000, now/1000, g.ReceivedAt+int64(j), g.EventID, g.Site, g.AnonymousID, g.URL, g.Path, g.ReceivedAt, g.ReceivedAt, j, f); err != nil {
				t.Fatal(err)
			}
		}
		for _, f := range k.counted {
			if err := c.conn.Exec(ctx, "INSERT INTO "+c.db+".counted (date, anonymous_id, event_id, since_ms, flush) SELECT toDate(toDateTime(?)), ?, ?, 0, ?",
				now/1000, g.AnonymousID, g.EventID, f); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range []uint64{done, redone} {
		m := markerRow(f, now, 0, 1)
		if err := c.writeLanding(ctx, dest{c.conn, c.db + ".landing_hourly"}, nil, []sink.LandingCell{m}); err != nil {
			t.Fatal(err)
		}
	}

	landed, err := c.Landed(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	left, err := c.Uncounted(ctx, time.Hour.Milliseconds())
	if err != nil {
		t.Fatal(err)
	}
	listed := make(map[string]int)
	for _, g := range left {
		listed[g.EventID]++
	}
	restored := make(map[string]int)
	if _, err := c.Resume(ctx, time.Hour.Milliseconds(), sink.ResumeScope{}, func(chunk []sink.Resume) error {
		for _, r := range chunk {
			for _, g := range r.Signals {
				restored[g.EventID]++
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, k := range cases {
		counted, held := landed[sink.KeyOf(&all[i])]
		if !held || counted != k.want {
			t.Errorf("%s: Landed says held %v, counted %v; want held, counted %v", k.id, held, counted, k.want)
		}
		if k.want && listed[k.id] > 0 || !k.want && listed[k.id] != len(k.raw) {
			t.Errorf("%s: Uncounted lists %d of its %d raw rows; counted %v", k.id, listed[k.id], len(k.raw), k.want)
		}
		if k.want != (restored[k.id] > 0) {
			t.Errorf("%s: Resume restores %d of its raw rows; counted %v", k.id, restored[k.id], k.want)
		}
	}
}

// BenchmarkLanded is the price of asking the store about every batch (an aggregator
// does, so that a client's resend is stored once) against writing the batch: a batch
// of 5,000 signals of as many visitors, half of them resends, over 200,000 stored rows.
// Every batch is written as an aggregator's flush is, with a landing row, so its keys
// count through the flush their raw rows carry (counted.go), and the store is taken as
// made with the counted table, so that no key counts by its age. Compare landed with
// write in the same run.
func BenchmarkLanded(b *testing.B) {
	ctx := context.Background()
	c, err := Open(ctx, testDSN(), Options{}, metrics.NewSet())
	if err != nil {
		b.Fatalf("ClickHouse is required: %v", err)
	}
	b.Cleanup(func() { c.DropDatabase(context.Background()); c.Close() })
	// As in a database made with the counted table: no key counts by its age.
	c.countedSince = 0
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
	flush := func(from int) *sink.Batch {
		return &sink.Batch{Signals: batch(from), Landing: []sink.LandingCell{{LandingKey: sink.LandingKey{Site: "bench.example",
			HourMs: sink.HourMs(now - 3600_000), LandingPath: "/p"}, Cell: 1, Version: uint64(from), Sessions: int64(from)}}}
	}
	for from := 0; from < 200_000; from += 5000 {
		if err := c.Write(ctx, flush(from)); err != nil {
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
			if err := c.Write(ctx, flush(from)); err != nil {
				b.Fatal(err)
			}
			from += 5000
		}
	})
}

// TestMissing: an insert retried after a failure whose outcome is unclear sends only
// the rows the table does not hold yet, with their sessions, and tells apart those it
// holds in rows of another flush: their count must be recorded for this one.
func TestMissing(t *testing.T) {
	ctx := context.Background()
	c := openTest(t)
	now := time.Now().UnixMilli()
	sig := func(i int) schemas.Signal {
		return schemas.Signal{Type: schemas.TypePageview, ReceivedAt: now + int64(i), Site: "retry.example",
			AnonymousID: fmt.Sprintf("visitor-%d", i%2), EventID: fmt.Sprintf("e%d", i), URL: "https://retry.example/", Path: "/"}
	}
	d := dest{c.conn, c.db + ".signals"}
	const this, other = 7, 9
	for _, w := range []struct {
		flush   uint64
		signals []schemas.Signal
	}{{this, []schemas.Signal{sig(0), sig(1)}}, {other, []schemas.Signal{sig(2)}}} {
		if _, err := c.insertSignals(ctx, d, &sink.Batch{Signals: w.signals}, w.flush, nil, 0); err != nil {
			t.Fatal(err)
		}
	}
	b := &sink.Batch{Signals: []schemas.Signal{sig(0), sig(3), sig(1), sig(4), sig(2)}, SessionMs: []int64{10, 30, 11, 40, 12}}
	rest, adopted, err := c.missing(ctx, d, b, this, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest.Signals) != 2 || rest.Signals[0].EventID != "e3" || rest.Signals[1].EventID != "e4" ||
		rest.SessionOf(0) != 30 || rest.SessionOf(1) != 40 {
		t.Errorf("missing: %+v", rest)
	}
	if len(adopted) != 1 || adopted[0].EventID != "e2" {
		t.Errorf("held by another flush: %+v, want e2", adopted)
	}
}

// TestFlushCommit kills a writer (cancels its Write at a failpoint, then drops its
// pre-aggregator) at each point of a flush's rollup writes that matters, and runs the
// writer that takes over as rung does: it waits for the dead one's inserts, restores
// the open sessions, counts what Uncounted lists, then gets the cut flush's signals
// again (a redelivery, a log replay). Every signal must then be stored and counted
// once by event_id, and the rollups equal a recomputation from the raw rows.
func TestFlushCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		// before: the cut flush dies after its raw and visitors rows, before its
		// landing rows and marker; else after its landing insert, before Write
		// returned.
		before bool
	}{
		{"before landing", true},
		{"after landing", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var cut cutter
			c := openWith(t, Options{BeforeLanding: cut.fire}, metrics.NewSet())

			now := time.Now().UnixMilli()
			sig := func(i, visitor int, typ schemas.Type) schemas.Signal {
				g := schemas.Signal{Type: typ, ReceivedAt: now + int64(i), Site: "commit.example",
					AnonymousID: fmt.Sprintf("visitor-%d", visitor), EventID: fmt.Sprintf("e%d", i),
					URL: fmt.Sprintf("https://commit.example/p%d", visitor%2), Path: fmt.Sprintf("/p%d", visitor%2)}
				switch typ {
				case schemas.TypeEvent:
					g.Name = "form_submitted"
				case schemas.TypeExposure:
					g.Experiment, g.Variant = "x", fmt.Sprintf("v%d", visitor%2)
				}
				return g
			}
			first := []schemas.Signal{sig(0, 0, schemas.TypePageview), sig(1, 1, schemas.TypePageview),
				sig(2, 2, schemas.TypePageview), sig(3, 0, schemas.TypeExposure)}
			// The cut flush starts sessions, converts one begun before, and exposes.
			second := []schemas.Signal{sig(4, 3, schemas.TypePageview), sig(5, 4, schemas.TypePageview),
				sig(6, 0, schemas.TypeEvent), sig(7, 3, schemas.TypeExposure), sig(8, 1, schemas.TypePageview)}
			all := append(append([]schemas.Signal(nil), first...), second...)

			dead, err := preagg.New(preagg.Config{}, metrics.NewSet())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dead.Restore(ctx, c, nil); err != nil {
				t.Fatal(err)
			}
			if err := dead.FlushTo(c)(ctx, append([]schemas.Signal(nil), first...)); err != nil {
				t.Fatal(err)
			}
			wctx, cancel := context.WithCancel(ctx)
			if tc.before {
				cut.cancel = cancel
			}
			err = dead.FlushTo(c)(wctx, append([]schemas.Signal(nil), second...))
			cut.cancel = nil
			cancel()
			if tc.before != (err != nil) {
				t.Fatalf("the cut flush: %v", err)
			}
			landed, err := c.Landed(ctx, second)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range second {
				if counted, held := landed[sink.KeyOf(&g)]; !held || counted == tc.before {
					t.Errorf("after the cut, Landed(%s) = counted %v, held %v; want held, counted %v", g.EventID, counted, held, !tc.before)
				}
			}

			// The writer that takes over.
			next, err := preagg.New(preagg.Config{}, metrics.NewSet())
			if err != nil {
				t.Fatal(err)
			}
			if err := c.WaitInserts(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := next.Restore(ctx, c, nil); err != nil {
				t.Fatal(err)
			}
			left, err := c.Uncounted(ctx, time.Hour.Milliseconds())
			if err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: len(second), false: 0}[tc.before]; len(left) != want {
				t.Errorf("Uncounted lists %d signals, want %d", len(left), want)
			}
			countAgain(ctx, t, c, next, left)
			countAgain(ctx, t, c, next, second) // delivered again

			landed, err = c.Landed(ctx, all)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range all {
				if counted, held := landed[sink.KeyOf(&g)]; !held || !counted {
					t.Errorf("Landed(%s) = counted %v, held %v; want both", g.EventID, counted, held)
				}
			}
			if left, err := c.Uncounted(ctx, time.Hour.Milliseconds()); err != nil || len(left) != 0 {
				t.Errorf("Uncounted after the recount: %d signals, %v; want none", len(left), err)
			}
			stored, err := c.Signals(ctx, 0, 1<<62)
			if err != nil {
				t.Fatal(err)
			}
			seen := make(map[string]int)
			for _, g := range stored {
				seen[g.EventID]++
			}
			for _, g := range all {
				if seen[g.EventID] != 1 {
					t.Errorf("%s stored %d times, want once", g.EventID, seen[g.EventID])
				}
			}
			audit, err := preagg.Reconcile(ctx, c, time.UnixMilli(now-3600_000), time.UnixMilli(now+3600_000), next.Rules())
			if err != nil {
				t.Fatal(err)
			}
			if audit.Sessions != 5 || audit.LandingHours == 0 || audit.Exposures != 2 {
				t.Errorf("reconcile compared %d sessions, %d landing hours, %d exposures; want 5, some, 2",
					audit.Sessions, audit.LandingHours, audit.Exposures)
			}
			for _, m := range audit.Mismatches {
				t.Errorf("reconcile: %s", m)
			}
		})
	}
}

// countAgain hands signals to agg as a writer that gets them again does (cmd/rung's
// skipStored): the counted ones are dropped, and those held but not counted are
// rolled up without their raw rows stored again.
func countAgain(ctx context.Context, t *testing.T, c *ClickHouse, agg *preagg.Aggregator, signals []schemas.Signal) {
	t.Helper()
	landed, err := c.Landed(ctx, signals)
	if err != nil {
		t.Fatal(err)
	}
	w := &countOnly{w: c, held: make(map[sink.Key]bool)}
	var fresh []schemas.Signal
	for _, g := range signals {
		k := sink.KeyOf(&g)
		counted, held := landed[k]
		if counted {
			continue
		}
		w.held[k] = held
		fresh = append(fresh, g)
	}
	if len(fresh) == 0 {
		return
	}
	if err := agg.FlushTo(w)(ctx, fresh); err != nil {
		t.Fatal(err)
	}
}

// countOnly moves the signals whose raw rows are held into the batch's Counted.
type countOnly struct {
	w    *ClickHouse
	held map[sink.Key]bool
}

func (s *countOnly) Write(ctx context.Context, b *sink.Batch) error {
	kept := sink.Batch{Landing: b.Landing, Exposures: b.Exposures, Conversions: b.Conversions, Counted: b.Counted}
	for i := range b.Signals {
		if s.held[sink.KeyOf(&b.Signals[i])] {
			kept.Counted = append(kept.Counted, b.Signals[i])
		} else {
			kept.Signals = append(kept.Signals, b.Signals[i])
			kept.SessionMs = append(kept.SessionMs, b.SessionOf(i))
		}
	}
	return s.w.Write(ctx, &kept)
}
