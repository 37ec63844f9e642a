package preagg

import (
	"context"
	"errors"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/preagg/stats"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

type writerFunc func(ctx context.Context, b *sink.Batch) error

func (f writerFunc) Write(ctx context.Context, b *sink.Batch) error { return f(ctx, b) }

var errAmbiguous = errors.New("connection reset after the insert landed")

// pipeline runs deliveries through a real buffer (64 shards, 4 flushers, batches of 400)
// into a, the way rung serve does. Every third write lands and then reports an error,
// as a connection reset after the insert would, and the flush is delivered again: the
// rollups must count it once.
func pipeline(t *testing.T, a *Aggregator, st store, ds []delivery) {
	t.Helper()
	var n atomic.Int64
	flaky := a.FlushTo(writerFunc(func(ctx context.Context, b *sink.Batch) error {
		if err := st.Write(ctx, b); err != nil {
			return err
		}
		if n.Add(1)%3 == 0 {
			return errAmbiguous
		}
		return nil
	}))
	flush := a.FlushTo(st)
	var failed atomic.Int64
	buf := buffer.New(buffer.Config{BatchSize: 400, FlushInterval: 20 * time.Millisecond, MaxBytes: 512 << 20},
		func(ctx context.Context, sigs []schemas.Signal) error {
			if err := flaky(ctx, sigs); err == nil {
				return nil
			}
			if err := flush(ctx, sigs); err != nil {
				failed.Add(1)
				return err
			}
			return nil
		}, metrics.NewSet())
	done := make(chan error, 1)
	go func() { done <- buf.Run(context.Background()) }()
	for i := range ds {
		if err := buf.Push(&ds[i].g); err != nil {
			t.Fatalf("push: %v", err)
		}
	}
	buf.Close()
	if err := <-done; err != nil {
		t.Fatalf("buffer: %v", err)
	}
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d flushes failed", f)
	}
	if n.Load() < 3 {
		t.Fatalf("only %d writes: no flush was retried", n.Load())
	}
}

// TestEndToEnd sends generated traffic with known ground truth through the buffer and
// the sessionizer into each real store, restarting the sessionizer halfway, and checks
// that the API's numbers, the ground truth and the recomputation from raw signals agree
// exactly: sessions across the 30-minute boundary, visitors exposed twice, conversions
// before exposure, late signals, duplicate event_ids, bots, three sites, sessions that
// span the restart, and flushes retried after a write that landed.
func TestEndToEnd(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { endToEnd(t, b.open(t)) })
	}
}

func endToEnd(t *testing.T, st store) {
	ctx := context.Background()
	split := testBase + 3*hour
	tr := generate(7, testBase, 1200, split)
	cut := sort.Search(len(tr.deliver), func(i int) bool { return tr.deliver[i].at >= split })
	t.Logf("%d signals (%d before the restart), %d sessions; dups %d, late %d, bots %d, ties %d, exact gaps %d",
		len(tr.deliver), cut, len(tr.sessions), tr.counts.dups, tr.counts.late, tr.counts.bots, tr.counts.ties, tr.counts.exactGaps)

	cfg := Config{MaxOpenSessions: 1 << 20}
	first := newAggregator(t, cfg)
	if n, err := first.Restore(ctx, st, nil); err != nil || n != 0 {
		t.Fatalf("Restore of an empty store: %d, %v", n, err)
	}
	start := time.Now()
	pipeline(t, first, st, tr.deliver[:cut])

	second := newAggregator(t, cfg) // the restart: nothing carried over but the store
	n, err := second.Restore(ctx, st, nil)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if n < tr.counts.restarts {
		t.Fatalf("restored %d sessions, want at least the %d spanning the restart", n, tr.counts.restarts)
	}
	pipeline(t, second, st, tr.deliver[cut:])

	if got := first.late.Get() + second.late.Get(); got < uint64(tr.counts.late) {
		t.Errorf("late signals counted %d, generated %d", got, tr.counts.late)
	}
	if got := first.dups.Get() + second.dups.Get(); got < uint64(tr.counts.dups) {
		t.Errorf("duplicates counted %d, generated at least %d", got, tr.counts.dups)
	}
	if got := first.aborted.Get() + second.aborted.Get(); got == 0 {
		t.Error("no flush was rolled back")
	}

	t.Logf("ingest took %v", time.Since(start))
	from, to := testBase, testBase+24*hour
	truth := tr.truth(from, to)
	pre, err := st.PreRolled(ctx, from, to, first.Rules())
	if err != nil {
		t.Fatal(err)
	}
	sameRollups(t, "pre-rolled vs ground truth", pre, truth)
	re, err := st.Recompute(ctx, from, to, first.Rules())
	if err != nil {
		t.Fatal(err)
	}
	sameRollups(t, "recomputed vs ground truth", re, truth)
	audit, err := Reconcile(ctx, st, time.UnixMilli(from), time.UnixMilli(to), first.Rules())
	if err != nil {
		t.Fatal(err)
	}
	if len(audit.Mismatches) != 0 || audit.Sessions != len(truth.Sessions) || audit.Exposures != len(truth.Exposures) {
		t.Errorf("reconcile: %d sessions, %d exposures compared (truth %d, %d), %d mismatches, first: %v",
			audit.Sessions, audit.Exposures, len(truth.Sessions), len(truth.Exposures), len(audit.Mismatches), firstOf(audit.Mismatches))
	}

	q := stats.NewQueries(st, stats.Options{})
	for _, site := range []string{"", "a.example", "b.example", "c.example"} {
		rep, err := q.LandingPages(ctx, stats.LandingQuery{Filter: stats.Filter{Site: site, From: time.UnixMilli(from), To: time.UnixMilli(to)}, Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		want := tr.landingTruth(site, from, to)
		got := map[string][2]int64{}
		for _, p := range rep.Pages { // every site's pages apart: summed per path, as the truth counts them
			g := got[p.Path]
			got[p.Path] = [2]int64{g[0] + p.Sessions, g[1] + p.Converted}
		}
		same(t, "landing pages of "+site, got, want)
	}
	for _, exp := range []string{"hero", "pricing"} {
		rep, err := q.Experiment(ctx, stats.ExperimentQuery{ID: exp})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][2]int64{}
		for _, v := range rep.Variants {
			got[v.Name] = [2]int64{v.Visitors, v.Converted}
		}
		same(t, "experiment "+exp, got, tr.variantTruth(exp))
	}

	// The auditor can fail: a stray landing row is one mismatch.
	stray := sink.LandingCell{LandingKey: sink.LandingKey{Site: "a.example", HourMs: testBase, LandingPath: "/stray"},
		Cell: 1, Sessions: 1, Version: 1}
	if err := st.Write(ctx, &sink.Batch{Landing: []sink.LandingCell{stray}}); err != nil {
		t.Fatal(err)
	}
	audit, err = Reconcile(ctx, st, time.UnixMilli(from), time.UnixMilli(to), first.Rules())
	if err != nil {
		t.Fatal(err)
	}
	if len(audit.Mismatches) != 1 || audit.Mismatches[0].Kind != "landing_hour" {
		t.Errorf("after a stray row: %d mismatches, want one landing_hour; first: %v", len(audit.Mismatches), firstOf(audit.Mismatches))
	}
}

func firstOf(ms []Mismatch) []Mismatch { return ms[:min(len(ms), 5)] }

func sameRollups(t *testing.T, what string, got, want *sink.Rollups) {
	t.Helper()
	diffRows(t, what+": sessions", got.Sessions, want.Sessions, func(s sink.Session) string {
		return s.Site + "/" + s.AnonymousID + "@" + time.UnixMilli(s.StartMs).UTC().Format(time.RFC3339Nano)
	})
	diffRows(t, what+": landing hours", got.Landing, want.Landing, func(l sink.LandingHour) string {
		return l.Site + " " + time.UnixMilli(l.HourMs).UTC().Format(time.RFC3339) + " " + l.LandingPath + " " + l.UTMSource + "/" + l.UTMMedium + "/" + l.UTMCampaign
	})
	diffRows(t, what+": exposures", got.Exposures, want.Exposures, func(e sink.VisitorExposure) string {
		return e.Site + "/" + e.Experiment + "/" + e.AnonymousID
	})
}

// diffRows reports rows that differ by key, a few at most.
func diffRows[T comparable](t *testing.T, what string, got, want []T, key func(T) string) {
	t.Helper()
	w := map[string]T{}
	for _, x := range want {
		w[key(x)] = x
	}
	g := map[string]T{}
	for _, x := range got {
		g[key(x)] = x
	}
	bad := 0
	for k, x := range w {
		if y, ok := g[k]; !ok || y != x {
			if bad++; bad <= 5 {
				t.Errorf("%s: %s\n got  %+v (present %v)\n want %+v", what, k, y, ok, x)
			}
		}
	}
	for k, y := range g {
		if _, ok := w[k]; !ok {
			if bad++; bad <= 5 {
				t.Errorf("%s: %s is extra: %+v", what, k, y)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d rows differ (%d got, %d want)", what, bad, len(got), len(want))
	}
}

func same[T comparable](t *testing.T, what string, got, want map[string]T) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q = %v, want %v", what, k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: extra %q = %v", what, k, v)
		}
	}
}
