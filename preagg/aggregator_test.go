package preagg

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

func pv(anon string, at int64, path string) schemas.Signal {
	return schemas.Signal{Type: schemas.TypePageview, Site: "s.example", AnonymousID: anon, ReceivedAt: testBase + at,
		EventID: fmt.Sprintf("%s-%d-%s", anon, at, path), Path: path, URL: "https://s.example" + path}
}

func goal(anon string, at int64) schemas.Signal {
	return schemas.Signal{Type: schemas.TypeEvent, Site: "s.example", AnonymousID: anon, ReceivedAt: testBase + at,
		EventID: fmt.Sprintf("%s-%d-goal", anon, at), Name: DefaultGoal}
}

// flush runs one batch through a, copying it first as the buffer's slice would be.
func flush(t *testing.T, a *Aggregator, w Writer, sigs ...schemas.Signal) error {
	t.Helper()
	return a.FlushTo(w)(context.Background(), append([]schemas.Signal(nil), sigs...))
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{SessionTimeout: time.Millisecond}, "session timeout"},
		{Config{Goals: []string{" "}}, "empty goal"},
		{Config{Shards: 4, Lanes: 8}, "lanes 8"},
		{Config{Shards: 64, MaxOpenSessions: 10}, "max open sessions 10"},
		{Config{MaxEventIDs: -1}, "max event ids"},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error about %q", c.cfg, err, c.want)
		}
		if _, err := New(c.cfg, nil); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v): %v, want ErrConfig", c.cfg, err)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if got := ParseGoals(" form_submitted, purchase ,,"); len(got) != 2 || got[1] != "purchase" {
		t.Errorf("ParseGoals: %q", got)
	}
}

// The rows one flush writes, case by case.
func TestSessionRows(t *testing.T) {
	a := newAggregator(t, Config{})
	w := &memWriter{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	sessions := func(b sink.Batch, want ...int64) {
		t.Helper()
		if fmt.Sprint(b.SessionMs) != fmt.Sprint(want) {
			t.Errorf("sessions %v, want %v", b.SessionMs, want)
		}
	}
	cells := func(b sink.Batch) map[string][2]int64 {
		out := map[string][2]int64{}
		for _, l := range b.Landing {
			out[l.LandingPath] = [2]int64{l.Sessions, l.Converted}
		}
		return out
	}
	// A session that starts with a goal, then lands on /b; a pageview on /a in the same
	// millisecond comes after it in order (placed 1 ms later) and does not land it.
	must(flush(t, a, w, goal("v", 0), pv("v", minute, "/b"), pv("v", minute, "/a")))
	b := w.batches[0]
	sessions(b, testBase, testBase, testBase)
	if len(b.Conversions) != 1 || b.Conversions[0].LastMs != testBase {
		t.Errorf("conversions: %+v", b.Conversions)
	}
	if b.Signals[2].EventAt != testBase+minute+1 {
		t.Errorf("the tie is placed at +%d, want 1 ms after /b", b.Signals[2].EventAt-testBase)
	}
	if c := cells(b); c["/b"] != [2]int64{1, 1} || len(c) != 1 {
		t.Errorf("landing cells: %+v (the moves through \"\" and /b net to nothing)", b.Landing)
	}
	// The same visitor 29:59.999 later: same session, nothing to roll up; exactly 30
	// minutes after that: a new session.
	must(flush(t, a, w, pv("v", minute+timeout-1, "/c")))
	sessions(w.batches[1], testBase)
	if b := w.batches[1]; len(b.Landing) != 0 {
		t.Errorf("a pageview that changes nothing wrote %+v", b.Landing)
	}
	second := testBase + minute + 2*timeout - 1
	must(flush(t, a, w, pv("v", minute+2*timeout-1, "/d")))
	sessions(w.batches[2], second)
	if c := cells(w.batches[2]); c["/d"] != [2]int64{1, 0} || len(c) != 1 {
		t.Errorf("new session: %+v", w.batches[2].Landing)
	}
	if a.started.Get() != 2 || a.Open() != 1 {
		t.Errorf("started %d, open %d", a.started.Get(), a.Open())
	}
	// A late signal is placed 1 ms after the visitor's last, in the raw row too (its
	// receive time stays); a duplicate is stored raw and counted in no session.
	late := goal("v", minute)
	late.EventID = "late"
	dup := pv("v", minute+2*timeout-1, "/d")
	dup.ReceivedAt += 5000
	must(flush(t, a, w, late, dup))
	b = w.batches[3]
	sessions(b, second, 0)
	if b.Signals[0].EventAt != second+1 || b.Signals[0].ReceivedAt != testBase+minute || len(b.Signals) != 2 {
		t.Errorf("late signal placed at +%d, received at +%d; want 1 ms after the visitor's last, received as sent",
			b.Signals[0].EventAt-testBase, b.Signals[0].ReceivedAt-testBase)
	}
	if a.late.Get() != 2 || a.dups.Get() != 1 { // the tie, and the late goal
		t.Errorf("late %d, dups %d", a.late.Get(), a.dups.Get())
	}
	if c := cells(b); c["/d"] != [2]int64{1, 1} {
		t.Errorf("the late goal converts the session: %+v", b.Landing)
	}
	// Bots are stored and otherwise ignored.
	bot := pv("bot", 0, "/")
	bot.Bot = true
	must(flush(t, a, w, bot))
	if b := w.batches[4]; len(b.Signals) != 1 || len(b.Landing) != 0 || a.Open() != 1 {
		t.Errorf("bot: %+v, open %d", b, a.Open())
	}
	sessions(w.batches[4], 0)
}

func TestExposureRows(t *testing.T) {
	a := newAggregator(t, Config{})
	w := &memWriter{}
	ex := func(at int64, variant string) schemas.Signal {
		return schemas.Signal{Type: schemas.TypeExposure, Site: "s.example", AnonymousID: "v", ReceivedAt: testBase + at,
			EventID: fmt.Sprintf("x-%d-%s", at, variant), Experiment: "hero", Variant: variant}
	}
	if err := flush(t, a, w, ex(0, "b"), ex(0, "a"), ex(minute, "control")); err != nil {
		t.Fatal(err)
	}
	if e := w.batches[0].Exposures; len(e) != 1 || e[0].Variant != "b" || e[0].FirstMs != testBase {
		t.Errorf("exposures: %+v, want b at +0 (the first in order; a tie comes after it)", e)
	}
	if err := flush(t, a, w, ex(2*minute, "b")); err != nil {
		t.Fatal(err)
	}
	if e := w.batches[1].Exposures; len(e) != 0 {
		t.Errorf("a later exposure wrote %+v", e)
	}
}

// Memory: closed sessions leave, open ones are capped with a counted eviction.
func TestMemoryBounds(t *testing.T) {
	a := newAggregator(t, Config{Shards: 1, Lanes: 1, MaxOpenSessions: 3})
	w := &memWriter{}
	for i := 0; i < 5; i++ {
		if err := flush(t, a, w, pv(fmt.Sprintf("v%d", i), int64(i)*second, "/")); err != nil {
			t.Fatal(err)
		}
	}
	if a.Open() != 3 || a.evicted.Get() != 2 {
		t.Errorf("open %d, evicted %d; want 3 and 2", a.Open(), a.evicted.Get())
	}
	// A signal a timeout and the late window after the others closes them all at the
	// next flush.
	if err := flush(t, a, w, pv("late-comer", timeout+hour+10*second, "/")); err != nil {
		t.Fatal(err)
	}
	if a.Open() != 1 || a.closed.Get() != 3 {
		t.Errorf("open %d, closed %d; want 1 and 3", a.Open(), a.closed.Get())
	}
	// Event ids past the bound are not remembered: counted, not deduplicated.
	a = newAggregator(t, Config{MaxEventIDs: 2})
	sigs := []schemas.Signal{pv("v", 0, "/1"), pv("v", 1, "/2"), pv("v", 2, "/3"), pv("v", 2, "/3")}
	if err := flush(t, a, w, sigs...); err != nil {
		t.Fatal(err)
	}
	if a.overflow.Get() != 1 || a.dups.Get() != 0 {
		t.Errorf("overflow %d, dups %d", a.overflow.Get(), a.dups.Get())
	}
}

// rowIdentity checks the contract of idempotent rows over everything ever written: one
// version of a cell key never carries two different values.
func rowIdentity(t *testing.T, batches []sink.Batch) {
	t.Helper()
	cells := map[string]sink.LandingCell{}
	for _, b := range batches {
		for _, l := range b.Landing {
			k := fmt.Sprintf("%+v/%d/v%d", l.LandingKey, l.Cell, l.Version)
			if o, ok := cells[k]; ok && o != l {
				t.Errorf("cell %s written as %+v and %+v", k, o, l)
			}
			cells[k] = l
		}
	}
}

// A flush whose write fails is rolled back; delivered again it writes exactly the rows
// a flush that never failed writes. And a failure that is not retried leaves no version
// that a later flush reuses with other values.
func TestRollback(t *testing.T) {
	tr := generate(3, testBase, 300, testBase+3*hour)
	var batches [][]schemas.Signal
	for i := 0; i < len(tr.deliver); i += 97 {
		var b []schemas.Signal
		for _, d := range tr.deliver[i:min(i+97, len(tr.deliver))] {
			b = append(b, d.g)
		}
		batches = append(batches, b)
	}
	run := func(failEvery int, redeliver bool) (*memWriter, *Aggregator) {
		a := newAggregator(t, Config{})
		attempts := 0
		w := &memWriter{}
		landThenFail := writerFunc(func(ctx context.Context, b *sink.Batch) error {
			attempts++
			if err := w.Write(ctx, b); err != nil {
				return err
			}
			if failEvery > 0 && attempts%failEvery == 0 {
				return errAmbiguous
			}
			return nil
		})
		for _, b := range batches {
			if err := flush(t, a, landThenFail, b...); err != nil && redeliver {
				if err := flush(t, a, landThenFail, b...); err != nil {
					t.Fatal(err)
				}
			}
		}
		return w, a
	}
	clean, _ := run(0, false)
	retried, a := run(4, true)
	if a.aborted.Get() == 0 {
		t.Fatal("no flush failed")
	}
	rowIdentity(t, retried.batches)
	// What the store ends up holding is the same.
	if got, want := final(retried.batches), final(clean.batches); got != want {
		t.Errorf("with retried flushes the store ends with\n%s\nwithout\n%s", got, want)
	}
	dropped, _ := run(3, false)
	rowIdentity(t, dropped.batches)
}

// final is what the store ends up holding, as text: the sessions the signals were
// counted in, and the winning cell rows summed per landing key.
func final(batches []sink.Batch) string {
	sessions := map[string]bool{}
	cells := map[string]sink.LandingCell{}
	for _, b := range batches {
		for i, sig := range b.Signals {
			if s := b.SessionOf(i); s != 0 {
				sessions[fmt.Sprintf("%s/%s/%d %s", sig.Site, sig.AnonymousID, s, sig.EventID)] = true
			}
		}
		for _, l := range b.Landing {
			k := fmt.Sprintf("%+v/%d", l.LandingKey, l.Cell)
			if o, ok := cells[k]; !ok || l.Version > o.Version {
				cells[k] = l
			}
		}
	}
	sum := map[sink.LandingKey][2]int64{}
	for _, c := range cells {
		s := sum[c.LandingKey]
		sum[c.LandingKey] = [2]int64{s[0] + c.Sessions, s[1] + c.Converted}
	}
	var lines []string
	for k := range sessions {
		lines = append(lines, k)
	}
	for k, s := range sum {
		if s != [2]int64{} {
			lines = append(lines, fmt.Sprintf("%+v %v", k, s))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestLateWindow: a visitor whose session closed and left memory sends a signal made
// during that session. It is placed no earlier than the late window before the newest
// signal placed, so it starts a session of its own instead of reaching back into the
// closed one, and the recomputation from raw signals agrees on each store.
func TestLateWindow(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			st := b.open(t)
			a := newAggregator(t, Config{Shards: 1, Lanes: 1})
			w := &memWriter{}
			both := writerFunc(func(ctx context.Context, b *sink.Batch) error {
				if err := w.Write(ctx, b); err != nil {
					return err
				}
				return st.Write(ctx, b)
			})
			for _, sig := range []schemas.Signal{pv("v", 0, "/a"), pv("w", timeout+hour+minute, "/"), pv("w", timeout+hour+2*minute, "/x")} {
				if err := a.FlushTo(both)(ctx, []schemas.Signal{sig}); err != nil {
					t.Fatal(err)
				}
			}
			if a.Open() != 1 {
				t.Fatalf("open %d, want 1: v's session closed a timeout and the late window ago", a.Open())
			}
			late := goal("v", 10*minute) // made during v's first session
			if err := a.FlushTo(both)(ctx, []schemas.Signal{late}); err != nil {
				t.Fatal(err)
			}
			b := w.batches[len(w.batches)-1]
			floor := testBase + timeout + 2*minute // an hour before w's last signal
			if b.Signals[0].EventAt != floor || b.SessionMs[0] != floor || a.late.Get() != 1 {
				t.Errorf("placed at +%v in the session of +%v (late %d), want a new session at +%v",
					time.Duration(b.Signals[0].EventAt-testBase)*time.Millisecond,
					time.Duration(b.SessionMs[0]-testBase)*time.Millisecond, a.late.Get(), time.Duration(floor-testBase)*time.Millisecond)
			}
			audit, err := Reconcile(ctx, st, time.UnixMilli(testBase), time.UnixMilli(testBase+24*hour), a.Rules())
			if err != nil {
				t.Fatal(err)
			}
			if len(audit.Mismatches) != 0 || audit.Sessions != 3 {
				t.Errorf("reconcile compared %d sessions (want 3): %v", audit.Sessions, audit.Mismatches)
			}
		})
	}
}
