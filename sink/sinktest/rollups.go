package sinktest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

const (
	hour   = int64(time.Hour / time.Millisecond)
	minute = int64(time.Minute / time.Millisecond)
)

// h0 is the start of the hour holding base: rollup fixtures start there.
var h0 = sink.HourMs(base)

// rollupBatches are three flushes' worth of rows as a pre-aggregator writes them:
// signals with the sessions they were counted in (a duplicate and a bot in none), and
// rollup rows that are absolute values with versions: two cells, a session that moves
// from no landing page to /p and converts, an exposure replaced by a tie with a smaller
// variant and one ignored for being later, a conversion ignored for being older, one in
// the exposure's millisecond (not after it), and a raw row written twice by a retried
// flush.
func rollupBatches() []*sink.Batch {
	k1 := sink.LandingKey{Site: "a.example", HourMs: h0, UTMSource: "g"}
	k2 := sink.LandingKey{Site: "a.example", HourMs: h0, LandingPath: "/p", UTMSource: "g"}
	k3 := sink.LandingKey{Site: "b.example", HourMs: h0 + hour, LandingPath: "/q"}
	sig := func(anon string, at int64, typ schemas.Type, id string) schemas.Signal {
		g := schemas.Signal{Type: typ, ReceivedAt: h0 + at, Site: "a.example", AnonymousID: anon, EventID: id}
		switch typ {
		case schemas.TypePageview:
			g.URL, g.Path, g.UTMSource = "https://a.example/p?utm_source=g", "/p", "g"
		case schemas.TypeEvent:
			g.Name = "form_submitted"
		case schemas.TypeExposure:
			g.Experiment, g.Variant = "hero", "b"
		}
		return g
	}
	v2pv := sig("v2", 2000, schemas.TypePageview, "v2-pv")
	dup := v2pv
	dup.ReceivedAt += 5
	bot := sig("v9", 2100, schemas.TypePageview, "v9-pv")
	bot.Bot = true
	return []*sink.Batch{{
		Signals:   []schemas.Signal{sig("v1", 1000, schemas.TypeExposure, "v1-x"), v2pv, dup, bot},
		SessionMs: []int64{h0 + 1000, h0 + 2000, 0, 0},
		Landing: []sink.LandingCell{
			{LandingKey: k1, Cell: 7, Sessions: 1, Version: 1},
			{LandingKey: k2, Cell: 7, Sessions: 1, Version: 1},
		},
		Exposures: []sink.Exposure{
			{Site: "a.example", Experiment: "hero", AnonymousID: "v1", FirstMs: h0 + 1000, Variant: "b"},
			{Site: "a.example", Experiment: "hero", AnonymousID: "v2", FirstMs: h0 + 2000, Variant: "control"},
		},
		Conversions: []sink.Conversion{{Site: "a.example", AnonymousID: "v2", LastMs: h0 + 2500}},
	}, {
		Signals:   []schemas.Signal{sig("v1", 1500, schemas.TypePageview, "v1-pv"), sig("v1", 1600, schemas.TypeEvent, "v1-goal")},
		SessionMs: []int64{h0 + 1000, h0 + 1000},
		Landing: []sink.LandingCell{
			{LandingKey: k1, Cell: 1 << 63, Sessions: -1, Version: 1}, // the top bit survives SQLite's int64
			{LandingKey: k2, Cell: 1 << 63, Sessions: 1, Converted: 1, Version: 1},
			{LandingKey: k3, Cell: 9, Sessions: 4, Converted: 2, Version: 1},
		},
		Exposures: []sink.Exposure{
			{Site: "a.example", Experiment: "hero", AnonymousID: "v1", FirstMs: h0 + 1000, Variant: "a"},
			{Site: "a.example", Experiment: "hero", AnonymousID: "v2", FirstMs: h0 + 3000, Variant: "b"},
			{Site: "b.example", Experiment: "menu", AnonymousID: "v3", FirstMs: h0 + hour, Variant: "control"},
		},
		Conversions: []sink.Conversion{
			{Site: "a.example", AnonymousID: "v1", LastMs: h0 + 1600},
			{Site: "a.example", AnonymousID: "v2", LastMs: h0 + 2400},
			// In the exposure's own millisecond: not after it, so no conversion.
			{Site: "b.example", AnonymousID: "v3", LastMs: h0 + hour},
		},
	}, {
		Signals:   []schemas.Signal{v2pv}, // the first flush's row again, from a retry
		SessionMs: []int64{h0 + 2000},
		Landing: []sink.LandingCell{
			{LandingKey: k2, Cell: 7, Sessions: 2, Version: 2},
			{LandingKey: k3, Cell: 9, Sessions: 3, Converted: 1, Version: 3},
			{LandingKey: k3, Cell: 9, Sessions: 9, Converted: 9, Version: 2}, // older: loses
		},
	}}
}

// wantRollups is what the batches above must read back as.
func wantRollups() (landing []sink.LandingCount, variants []sink.VariantCount, pre *sink.Rollups) {
	landing = []sink.LandingCount{{LandingPath: "/p", Sessions: 3, Converted: 1}}
	variants = []sink.VariantCount{{Variant: "a", Visitors: 1, Converted: 1}, {Variant: "control", Visitors: 1, Converted: 1}}
	pre = &sink.Rollups{
		Sessions: []sink.Session{
			{Site: "a.example", AnonymousID: "v1", StartMs: h0 + 1000, LandingMs: h0 + 1500, LandingPath: "/p",
				UTMSource: "g", Converted: true},
			{Site: "a.example", AnonymousID: "v2", StartMs: h0 + 2000, LandingMs: h0 + 2000, LandingPath: "/p", UTMSource: "g"},
		},
		Landing: []sink.LandingHour{
			{LandingKey: sink.LandingKey{Site: "a.example", HourMs: h0, LandingPath: "/p", UTMSource: "g"}, Sessions: 3, Converted: 1},
			{LandingKey: sink.LandingKey{Site: "b.example", HourMs: h0 + hour, LandingPath: "/q"}, Sessions: 3, Converted: 1},
		},
		Exposures: []sink.VisitorExposure{
			{Exposure: sink.Exposure{Site: "a.example", Experiment: "hero", AnonymousID: "v1", FirstMs: h0 + 1000, Variant: "a"}, Converted: true},
			{Exposure: sink.Exposure{Site: "a.example", Experiment: "hero", AnonymousID: "v2", FirstMs: h0 + 2000, Variant: "control"}, Converted: true},
			{Exposure: sink.Exposure{Site: "b.example", Experiment: "menu", AnonymousID: "v3", FirstMs: h0 + hour, Variant: "control"}},
		},
	}
	return landing, variants, pre
}

func rollups(t *testing.T, s Store) {
	for _, b := range rollupBatches() {
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	checkRollups(t, s, "written once")
	if o, ok := s.(Optimizer); ok {
		if err := o.Optimize(context.Background()); err != nil {
			t.Fatalf("Optimize: %v", err)
		}
		checkRollups(t, s, "after merges")
	}
}

// retriedRollups writes every batch twice, the way a flush retried after an ambiguous
// error does, and the second batch again after the third: nothing may count twice.
func retriedRollups(t *testing.T, s Store) {
	bs := rollupBatches()
	for _, b := range []*sink.Batch{bs[0], bs[0], bs[1], bs[1], bs[2], bs[1], bs[2]} {
		if err := s.Write(context.Background(), b); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	checkRollups(t, s, "retried")
}

func checkRollups(t *testing.T, s Store, when string) {
	t.Helper()
	ctx := context.Background()
	wantLanding, wantVariants, wantPre := wantRollups()
	landing, err := s.LandingCounts(ctx, sink.LandingFilter{Site: "a.example", FromMs: h0, ToMs: h0 + hour})
	if err != nil {
		t.Fatalf("LandingCounts: %v", err)
	}
	same(t, when+": landing pages", landing, wantLanding)
	// The range widens to whole hours; the utm filter applies; another site is apart.
	landing, err = s.LandingCounts(ctx, sink.LandingFilter{Site: "a.example", FromMs: h0 + 10*minute, ToMs: h0 + 20*minute, UTMSource: "g"})
	if err != nil {
		t.Fatalf("LandingCounts: %v", err)
	}
	same(t, when+": landing pages, hour widened, utm_source=g", landing, wantLanding)
	landing, err = s.LandingCounts(ctx, sink.LandingFilter{Site: "a.example", FromMs: h0, ToMs: h0 + hour, UTMSource: "other"})
	if err != nil {
		t.Fatalf("LandingCounts: %v", err)
	}
	same(t, when+": landing pages, utm_source=other", landing, []sink.LandingCount(nil))
	landing, err = s.LandingCounts(ctx, sink.LandingFilter{FromMs: h0, ToMs: h0 + 2*hour})
	if err != nil {
		t.Fatalf("LandingCounts: %v", err)
	}
	same(t, when+": landing pages of every site", landing, []sink.LandingCount{
		{LandingPath: "/p", Sessions: 3, Converted: 1}, {LandingPath: "/q", Sessions: 3, Converted: 1}})

	variants, err := s.VariantCounts(ctx, sink.ExperimentFilter{Site: "a.example", Experiment: "hero", FromMs: 0, ToMs: h0 + 24*hour})
	if err != nil {
		t.Fatalf("VariantCounts: %v", err)
	}
	same(t, when+": variants", variants, wantVariants)
	variants, err = s.VariantCounts(ctx, sink.ExperimentFilter{Experiment: "hero", FromMs: h0 + 1500, ToMs: h0 + 24*hour})
	if err != nil {
		t.Fatalf("VariantCounts: %v", err)
	}
	same(t, when+": variants first exposed from +1.5s", variants, []sink.VariantCount{{Variant: "control", Visitors: 1, Converted: 1}})
	variants, err = s.VariantCounts(ctx, sink.ExperimentFilter{Experiment: "menu", FromMs: 0, ToMs: h0 + 24*hour})
	if err != nil {
		t.Fatalf("VariantCounts: %v", err)
	}
	same(t, when+": a goal in the exposure's millisecond", variants, []sink.VariantCount{{Variant: "control", Visitors: 1}})

	exps, err := s.Experiments(ctx, "")
	if err != nil {
		t.Fatalf("Experiments: %v", err)
	}
	same(t, when+": experiments", exps, []sink.ExperimentInfo{
		{Experiment: "hero", Visitors: 2, FirstMs: h0 + 1000, LastMs: h0 + 2000},
		{Experiment: "menu", Visitors: 1, FirstMs: h0 + hour, LastMs: h0 + hour}})

	pre, err := s.PreRolled(ctx, h0, h0+2*hour, rules)
	if err != nil {
		t.Fatalf("PreRolled: %v", err)
	}
	same(t, when+": pre-rolled", pre, wantPre)
}

// same fails the test when got and want differ, nil and empty slices alike.
func same[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(normal(got), normal(want)) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// normal makes empty slices nil, so DeepEqual compares contents.
func normal(v any) any {
	switch x := v.(type) {
	case []sink.LandingCount:
		if len(x) == 0 {
			return []sink.LandingCount(nil)
		}
	case []sink.VariantCount:
		if len(x) == 0 {
			return []sink.VariantCount(nil)
		}
	case *sink.Rollups:
		if x == nil {
			return x
		}
		c := *x
		if len(c.Sessions) == 0 {
			c.Sessions = nil
		}
		if len(c.Landing) == 0 {
			c.Landing = nil
		}
		if len(c.Exposures) == 0 {
			c.Exposures = nil
		}
		return &c
	}
	return v
}

// Traffic whose rollups are worked out by hand, for the recomputation. With a 30-minute
// timeout, on a.example:
//
//	v1: pageview /home (utm g) at +0, goal at +10m and a copy of it at +11m (one event),
//	    then after exactly 30 minutes a new session: exposure hero/b at +40m, pageviews
//	    /pricing (utm x) and /about (utm y) both at +41m, the tie going to /about; a bot
//	    pageview at +50m that counts for nothing.
//	v2: a goal at +5m (a session without a pageview), exposure hero/control at +6m and
//	    hero/b at +7m: the first exposure decides, the earlier goal does not convert it.
//	v4: pageview /x at +1m and a later copy of it at +1m5s.
//
// and on b.example, v3: exposure hero/b at +2h, goal at +3h (a new session, and a
// conversion after the exposure).
func recomputeSignals() []schemas.Signal {
	pv := func(anon, id string, at int64, path, src string) schemas.Signal {
		return schemas.Signal{Type: schemas.TypePageview, ReceivedAt: h0 + at, Site: "a.example", AnonymousID: anon,
			EventID: id, URL: "https://a.example" + path, Path: path, UTMSource: src}
	}
	ev := func(site, anon, id string, at int64, name string) schemas.Signal {
		return schemas.Signal{Type: schemas.TypeEvent, ReceivedAt: h0 + at, Site: site, AnonymousID: anon, EventID: id, Name: name}
	}
	ex := func(site, anon, id string, at int64, variant string) schemas.Signal {
		return schemas.Signal{Type: schemas.TypeExposure, ReceivedAt: h0 + at, Site: site, AnonymousID: anon, EventID: id,
			Experiment: "hero", Variant: variant}
	}
	bot := pv("v1", "v1-bot", 50*minute, "/bot", "")
	bot.Bot = true
	return []schemas.Signal{
		pv("v1", "v1-1", 0, "/home", "g"),
		ev("a.example", "v2", "v2-1", 5*minute, "form_submitted"),
		ev("a.example", "v1", "v1-2", 10*minute, "form_submitted"),
		ev("a.example", "v1", "v1-2", 11*minute, "form_submitted"),
		ev("a.example", "v1", "v1-3", 12*minute, "scrolled"),
		pv("v4", "v4-1", minute, "/x", ""),
		pv("v4", "v4-1", minute+5000, "/x", ""),
		ex("a.example", "v2", "v2-2", 6*minute, "control"),
		ex("a.example", "v2", "v2-3", 7*minute, "b"),
		ex("a.example", "v1", "v1-4", 42*minute, "b"),
		pv("v1", "v1-5", 43*minute, "/pricing", "x"),
		pv("v1", "v1-6", 43*minute, "/about", "y"),
		bot,
		ex("b.example", "v3", "v3-1", 2*hour, "b"),
		ev("b.example", "v3", "v3-2", 3*hour, "form_submitted"),
	}
}

var rules = sink.Rules{SessionTimeoutMs: 30 * minute, Goals: []string{"form_submitted", "purchase"}}

func recompute(t *testing.T, s Store) {
	ctx := context.Background()
	if err := s.Write(ctx, &sink.Batch{Signals: recomputeSignals()}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	a := func(anon string, start, lms int64, path, src string, conv bool) sink.Session {
		if path == "" {
			return sink.Session{Site: "a.example", AnonymousID: anon, StartMs: h0 + start, Converted: conv}
		}
		return sink.Session{Site: "a.example", AnonymousID: anon, StartMs: h0 + start, LandingMs: h0 + lms,
			LandingPath: path, UTMSource: src, Converted: conv}
	}
	key := func(site string, at int64, path, src string) sink.LandingKey {
		return sink.LandingKey{Site: site, HourMs: h0 + at, LandingPath: path, UTMSource: src}
	}
	want := &sink.Rollups{
		Sessions: []sink.Session{
			a("v1", 0, 0, "/home", "g", true),
			a("v1", 42*minute, 43*minute, "/about", "y", false),
			a("v2", 5*minute, 0, "", "", true),
			a("v4", minute, minute, "/x", "", false),
			{Site: "b.example", AnonymousID: "v3", StartMs: h0 + 2*hour},
			{Site: "b.example", AnonymousID: "v3", StartMs: h0 + 3*hour, Converted: true},
		},
		Landing: []sink.LandingHour{
			{LandingKey: key("a.example", 0, "", ""), Sessions: 1, Converted: 1},
			{LandingKey: key("a.example", 0, "/about", "y"), Sessions: 1},
			{LandingKey: key("a.example", 0, "/home", "g"), Sessions: 1, Converted: 1},
			{LandingKey: key("a.example", 0, "/x", ""), Sessions: 1},
			{LandingKey: key("b.example", 2*hour, "", ""), Sessions: 1},
			{LandingKey: key("b.example", 3*hour, "", ""), Sessions: 1, Converted: 1},
		},
		Exposures: []sink.VisitorExposure{
			{Exposure: sink.Exposure{Site: "a.example", Experiment: "hero", AnonymousID: "v1", FirstMs: h0 + 42*minute, Variant: "b"}},
			{Exposure: sink.Exposure{Site: "a.example", Experiment: "hero", AnonymousID: "v2", FirstMs: h0 + 6*minute, Variant: "control"}},
			{Exposure: sink.Exposure{Site: "b.example", Experiment: "hero", AnonymousID: "v3", FirstMs: h0 + 2*hour, Variant: "b"}, Converted: true},
		},
	}
	got, err := s.Recompute(ctx, h0, h0+4*hour, rules)
	if err != nil {
		t.Fatalf("Recompute: %v", err)
	}
	same(t, "recomputed", got, want)

	// A range that starts after a visitor's first session still sees their history: v1's
	// second session is one, not the start of something new; v3's second session alone.
	got, err = s.Recompute(ctx, h0+30*minute, h0+4*hour, rules)
	if err != nil {
		t.Fatalf("Recompute: %v", err)
	}
	same(t, "recomputed from +30m, sessions", got.Sessions, []sink.Session{want.Sessions[1], want.Sessions[4], want.Sessions[5]})
	same(t, "recomputed from +30m, exposures", got.Exposures, []sink.VisitorExposure{want.Exposures[0], want.Exposures[2]})

	landing, err := s.RecomputeLanding(ctx, sink.LandingFilter{Site: "a.example", FromMs: h0, ToMs: h0 + hour}, rules)
	if err != nil {
		t.Fatalf("RecomputeLanding: %v", err)
	}
	same(t, "recomputed landing pages", landing, []sink.LandingCount{
		{LandingPath: "", Sessions: 1, Converted: 1}, {LandingPath: "/about", Sessions: 1},
		{LandingPath: "/home", Sessions: 1, Converted: 1}, {LandingPath: "/x", Sessions: 1}})
	landing, err = s.RecomputeLanding(ctx, sink.LandingFilter{FromMs: h0, ToMs: h0 + hour, UTMSource: "g"}, rules)
	if err != nil {
		t.Fatalf("RecomputeLanding: %v", err)
	}
	same(t, "recomputed landing pages, utm_source=g", landing, []sink.LandingCount{{LandingPath: "/home", Sessions: 1, Converted: 1}})

	// A session ends after a gap of the timeout: one millisecond less keeps it going.
	longer := rules
	longer.SessionTimeoutMs = 30*minute + 1
	got, err = s.Recompute(ctx, h0, h0+hour, longer)
	if err != nil {
		t.Fatalf("Recompute: %v", err)
	}
	if n := len(got.Sessions); n != 3 {
		t.Errorf("with a timeout of 30m+1ms: %d sessions on a.example, want 3 (v1 one session): %+v", n, got.Sessions)
	}
}

// resumeAll reads back every chunk Resume hands over.
func resumeAll(t *testing.T, s Store, timeoutMs int64, scope sink.ResumeScope) ([]sink.Resume, int) {
	t.Helper()
	var got []sink.Resume
	skipped, err := s.Resume(context.Background(), timeoutMs, scope, func(chunk []sink.Resume) error {
		for _, r := range chunk {
			r.Signals = append([]schemas.Signal(nil), r.Signals...) // the chunk is not ours to keep
			got = append(got, r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Resume(%+v): %v", scope, err)
	}
	return got, skipped
}

func resume(t *testing.T, open Open) {
	t.Run("Sessions", func(t *testing.T) { resumeSessions(t, open(t)) })
	t.Run("Partitions", func(t *testing.T) { resumePartitions(t, open(t)) })
	t.Run("Limit", func(t *testing.T) { resumeLimit(t, open(t)) })
}

// openVisitors writes n visitors with an open session each, visitor i's last signal
// at lastMs(i); their ids include non-ASCII ones, which hash as UTF-8 bytes.
func openVisitors(t *testing.T, s Store, n int, lastMs func(i int) int64) []string {
	t.Helper()
	b := &sink.Batch{}
	anons := make([]string, n)
	for i := range anons {
		anons[i] = fmt.Sprintf("visitor-%03d", i)
		if i%3 == 0 {
			anons[i] = fmt.Sprintf("visiteur-été-%03d-访客", i)
		}
		last := lastMs(i)
		for j, at := range []int64{last - minute, last} {
			b.Signals = append(b.Signals, schemas.Signal{Type: schemas.TypePageview, ReceivedAt: at, Site: "a.example",
				AnonymousID: anons[i], EventID: fmt.Sprintf("%s-%d", anons[i], j), URL: "https://a.example/", Path: "/"})
			b.SessionMs = append(b.SessionMs, last-minute)
		}
	}
	if err := s.Write(context.Background(), b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return anons
}

// Restoring some partitions restores exactly the visitors whose xxhash64(anonymous_id)
// falls in them, and the partitions together restore everyone once.
func resumePartitions(t *testing.T, s Store) {
	const n, parts = 300, 8
	anons := openVisitors(t, s, n, func(i int) int64 { return h0 + 10*minute + int64(i)*1000 })
	seen := map[string]int{}
	for _, owned := range [][]int{{0, 3}, {1, 2, 4}, {5, 6, 7}} {
		got, skipped := resumeAll(t, s, 30*minute, sink.ResumeScope{Partitions: parts, Owned: owned})
		if skipped != 0 {
			t.Errorf("partitions %v: %d skipped without a limit", owned, skipped)
		}
		in := map[int]bool{}
		for _, p := range owned {
			in[p] = true
		}
		want := 0
		for _, a := range anons {
			if in[int(xxhash.Sum64String(a)%parts)] {
				want++
			}
		}
		for _, r := range got {
			if p := int(xxhash.Sum64String(r.Session.AnonymousID) % parts); !in[p] {
				t.Errorf("partitions %v: restored %q of partition %d", owned, r.Session.AnonymousID, p)
			}
			if len(r.Signals) != 2 {
				t.Errorf("partitions %v: %q with %d signals, want 2", owned, r.Session.AnonymousID, len(r.Signals))
			}
			seen[r.Session.AnonymousID]++
		}
		if len(got) != want {
			t.Errorf("partitions %v: restored %d visitors, want %d", owned, len(got), want)
		}
	}
	for _, a := range anons {
		if seen[a] != 1 {
			t.Errorf("%q restored %d times over all partitions, want once", a, seen[a])
		}
	}
	for _, bad := range []sink.ResumeScope{{Partitions: 8, Owned: []int{8}}, {Owned: []int{0}}, {Partitions: 4, Owned: []int{-1}}} {
		if _, err := s.Resume(context.Background(), 30*minute, bad, func([]sink.Resume) error { return nil }); err == nil {
			t.Errorf("Resume accepted the scope %+v", bad)
		}
	}
}

// A limit keeps the most recently active visitors and counts the others. The visitors
// come in ten groups of ten, each group's last activity a few steps of the timeout
// apart, so a store that picks its cut-off per step (ClickHouse, 1/32 of the timeout)
// and one that picks it per visitor (SQLite) agree on which groups are whole.
func resumeLimit(t *testing.T, s Store) {
	const timeout, limit = 32 * minute, 35
	newest := h0 + 2*hour
	lastMs := func(i int) int64 { return newest - int64(i/10)*3*minute }
	anons := openVisitors(t, s, 100, lastMs)
	got, skipped := resumeAll(t, s, timeout, sink.ResumeScope{Limit: limit})
	if len(got) > limit || len(got) < 30 {
		t.Fatalf("restored %d of 100 with a limit of %d, want the 30 to %d most recent", len(got), limit, limit)
	}
	if len(got)+skipped != len(anons) {
		t.Errorf("restored %d and skipped %d of %d", len(got), skipped, len(anons))
	}
	for _, r := range got {
		if last := r.Signals[len(r.Signals)-1].EventAt; last < newest-3*3*minute {
			t.Errorf("restored %q last active at %d, before the most recent %d", r.Session.AnonymousID, last, limit)
		}
	}
	if got, skipped := resumeAll(t, s, timeout, sink.ResumeScope{Limit: 1000}); len(got) != 100 || skipped != 0 {
		t.Errorf("with a limit above the count: restored %d, skipped %d, want 100 and 0", len(got), skipped)
	}
}

func resumeSessions(t *testing.T, s Store) {
	ctx := context.Background()
	if got, skipped := resumeAll(t, s, 30*minute, sink.ResumeScope{}); len(got) != 0 || skipped != 0 {
		t.Fatalf("Resume of an empty store: %v, %d skipped", got, skipped)
	}
	sig := func(anon string, at int64) schemas.Signal {
		return schemas.Signal{Type: schemas.TypePageview, ReceivedAt: h0 + at, Site: "a.example", AnonymousID: anon,
			EventID: fmt.Sprintf("%s-%d", anon, at), URL: "https://a.example/", Path: "/"}
	}
	bot := sig("open", 90*minute) // bots neither make "now" nor come back
	bot.Bot = true
	dup := sig("open", 50*minute) // a duplicate: stored, counted in no session
	dup.ReceivedAt += 25 * minute
	b := &sink.Batch{
		Signals: []schemas.Signal{sig("old", 0), sig("open", 0), sig("open", 50*minute), sig("open", 70*minute), dup,
			sig("new", 80*minute), bot},
		SessionMs: []int64{h0, h0, h0 + 50*minute, h0 + 50*minute, 0, h0 + 80*minute, 0},
	}
	if err := s.Write(ctx, b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, _ := resumeAll(t, s, 30*minute, sink.ResumeScope{})
	byAnon := map[string]sink.Resume{}
	for _, r := range got {
		byAnon[r.Session.AnonymousID] = r
	}
	if len(got) != 2 || byAnon["open"].Session.StartMs != h0+50*minute || byAnon["new"].Session.StartMs != h0+80*minute {
		t.Fatalf("Resume: got %+v, want the sessions of open (from +50m) and new (from +80m)", got)
	}
	if r := byAnon["open"]; len(r.Signals) != 2 || r.Signals[0].EventAt != h0+50*minute || r.Signals[1].EventAt != h0+70*minute {
		t.Errorf("Resume of open: %+v, want the signals at +50m and +70m", r)
	}
	if r := byAnon["new"]; len(r.Signals) != 1 || r.Signals[0].EventID != "new-4800000" {
		t.Errorf("Resume of new: %+v", r)
	}
}
