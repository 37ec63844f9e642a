package sinktest

import (
	"context"
	"testing"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Breakdowner is a Store that breaks the landing rollup down for the dashboard: by its
// columns, by time, and (from the raw signals) by the landing pageview's referrer, and
// counts the bot signals the rollups left out.
type Breakdowner interface {
	LandingGroups(ctx context.Context, f sink.LandingFilter, by []string) ([]sink.GroupCount, error)
	LandingSeries(ctx context.Context, f sink.LandingFilter, stepMs int64) ([]sink.SeriesCount, error)
	SessionReferrers(ctx context.Context, f sink.LandingFilter, goals []string) ([]sink.GroupCount, error)
	BotSignals(ctx context.Context, site string, fromMs, toMs int64) (int64, error)
}

func gc(n, k int64, keys ...string) sink.GroupCount {
	return sink.GroupCount{Keys: keys, Sessions: n, Converted: k}
}

// breakdowns reads the rollup batches of the Rollups test back by site, page, utm and
// time, and sessions by referrer from signals of their own.
func breakdowns(t *testing.T, s Store) {
	b, ok := s.(Breakdowner)
	if !ok {
		t.Fatalf("%T does not break the rollups down (LandingGroups)", s)
	}
	ctx := context.Background()
	for _, w := range rollupBatches() {
		if err := s.Write(ctx, w); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	all := sink.LandingFilter{FromMs: h0, ToMs: h0 + 2*hour}
	for _, tc := range []struct {
		name string
		f    sink.LandingFilter
		by   []string
		want []sink.GroupCount
	}{
		{"site and page", all, []string{"site", "landing_path"}, []sink.GroupCount{gc(3, 1, "a.example", "/p"), gc(3, 1, "b.example", "/q")}},
		{"utm_source", all, []string{"utm_source"}, []sink.GroupCount{gc(3, 1, ""), gc(3, 1, "g")}},
		{"site of b", sink.LandingFilter{Site: "b.example", FromMs: h0, ToMs: h0 + 2*hour}, []string{"site"}, []sink.GroupCount{gc(3, 1, "b.example")}},
		{"first hour, widened", sink.LandingFilter{FromMs: h0 + minute, ToMs: h0 + 2*minute}, []string{"site"}, []sink.GroupCount{gc(3, 1, "a.example")}},
		{"utm filter", sink.LandingFilter{FromMs: h0, ToMs: h0 + 2*hour, UTMSource: "g"}, []string{"landing_path", "utm_medium"}, []sink.GroupCount{gc(3, 1, "/p", "")}},
	} {
		got, err := b.LandingGroups(ctx, tc.f, tc.by)
		if err != nil {
			t.Fatalf("LandingGroups %s: %v", tc.name, err)
		}
		same(t, "groups by "+tc.name, got, tc.want)
	}
	if _, err := b.LandingGroups(ctx, all, []string{"cell; DROP TABLE signals"}); err == nil {
		t.Errorf("LandingGroups by an unknown column: no error")
	}
	day := 24 * hour
	for _, tc := range []struct {
		name string
		step int64
		want []sink.SeriesCount
	}{
		{"hour", hour, []sink.SeriesCount{{StartMs: h0, Sessions: 3, Converted: 1}, {StartMs: h0 + hour, Sessions: 3, Converted: 1}}},
		{"day", day, []sink.SeriesCount{{StartMs: h0 - h0%day, Sessions: 6, Converted: 2}}},
	} {
		got, err := b.LandingSeries(ctx, all, tc.step)
		if err != nil {
			t.Fatalf("LandingSeries by %s: %v", tc.name, err)
		}
		same(t, "series by "+tc.name, got, tc.want)
	}
	if _, err := b.LandingSeries(ctx, all, minute); err == nil {
		t.Errorf("LandingSeries by the minute: no error")
	}

	// Sessions by the referrer of their landing pageview, from raw signals of their own
	// (hours after the rollup batches' signals, so those stay out).
	t0 := h0 + 10*hour
	var sb sink.Batch
	add := func(site, anon string, session, at int64, typ schemas.Type, id, ref, src string, bot bool) {
		g := schemas.Signal{Type: typ, ReceivedAt: t0 + at, Site: site, AnonymousID: anon, EventID: id,
			Referrer: ref, UTMSource: src, Bot: bot}
		switch typ {
		case schemas.TypePageview:
			g.Path, g.URL = "/l", "https://"+site+"/l"
		case schemas.TypeEvent:
			g.Name = "form_submitted"
		}
		sb.Signals = append(sb.Signals, g)
		if session != 0 {
			session += t0
		}
		sb.SessionMs = append(sb.SessionMs, session)
	}
	add("a.example", "r1", 1000, 1000, schemas.TypePageview, "r1-pv", "https://news.example/a", "g", false)
	add("a.example", "r1", 1000, 1000, schemas.TypePageview, "r1-pv", "https://news.example/a", "g", false) // a copy
	add("a.example", "r1", 1000, 1200, schemas.TypeEvent, "r1-goal", "", "", false)
	add("a.example", "r2", 2000, 2000, schemas.TypePageview, "r2-pv1", "", "", false)
	add("a.example", "r2", 2000, 2500, schemas.TypePageview, "r2-pv2", "https://not-landing.example/", "", false)
	add("a.example", "r3", 3000, 3000, schemas.TypeEvent, "r3-goal", "", "", false) // no pageview
	add("a.example", "r4", 0, 4000, schemas.TypePageview, "r4-pv", "https://bot.example/", "", true)
	add("a.example", "r4", 0, 4001, schemas.TypePageview, "r4-pv2", "https://bot.example/", "", true)
	add("b.example", "r5", hour+5, hour+5, schemas.TypePageview, "r5-pv", "https://news.example/b", "", false)
	add("a.example", "r6", -1000, 100, schemas.TypePageview, "r6-pv", "https://earlier.example/", "", false) // started the hour before
	if err := s.Write(ctx, &sb); err != nil {
		t.Fatalf("Write: %v", err)
	}
	goals := []string{"form_submitted"}
	for _, tc := range []struct {
		name string
		f    sink.LandingFilter
		want []sink.GroupCount
	}{
		{"a.example", sink.LandingFilter{Site: "a.example", FromMs: t0, ToMs: t0 + hour},
			[]sink.GroupCount{gc(2, 1, ""), gc(1, 1, "https://news.example/a")}},
		{"every site", sink.LandingFilter{FromMs: t0, ToMs: t0 + 2*hour},
			[]sink.GroupCount{gc(2, 1, ""), gc(1, 1, "https://news.example/a"), gc(1, 0, "https://news.example/b")}},
		{"utm_source=g", sink.LandingFilter{FromMs: t0, ToMs: t0 + 2*hour, UTMSource: "g"},
			[]sink.GroupCount{gc(1, 1, "https://news.example/a")}},
	} {
		got, err := b.SessionReferrers(ctx, tc.f, goals)
		if err != nil {
			t.Fatalf("SessionReferrers %s: %v", tc.name, err)
		}
		same(t, "sessions by referrer, "+tc.name, got, tc.want)
	}
	for _, tc := range []struct {
		site     string
		from, to int64
		want     int64
	}{
		{"a.example", t0, t0 + hour, 2},
		{"b.example", t0, t0 + hour, 0},
		{"", h0, t0 + hour, 3}, // and the bot of the rollup batches
	} {
		n, err := b.BotSignals(ctx, tc.site, tc.from, tc.to)
		if err != nil {
			t.Fatalf("BotSignals: %v", err)
		}
		if n != tc.want {
			t.Errorf("BotSignals(%q): %d, want %d", tc.site, n, tc.want)
		}
	}
}
