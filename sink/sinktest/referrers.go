package sinktest

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Referrerer is a Store that counts a path's pageviews by referrer, from the raw signals:
// what the dashboard shows beside a landing page.
type Referrerer interface {
	Referrers(ctx context.Context, f sink.ReferrerFilter) ([]sink.ReferrerCount, error)
}

func rc(ref string, n int64) sink.ReferrerCount {
	return sink.ReferrerCount{Referrer: ref, Pageviews: n}
}

func referrers(t *testing.T, s Store) {
	r, ok := s.(Referrerer)
	if !ok {
		t.Fatalf("%T does not count referrers (Referrers)", s)
	}
	ctx := context.Background()
	var b sink.Batch
	add := func(n int, site, path, ref string, mod func(*schemas.Signal)) {
		for range n {
			g := signal(len(b.Signals))
			g.Site, g.Path, g.URL, g.Referrer = site, path, "https://"+site+path, ref
			if mod != nil {
				mod(&g)
			}
			b.Signals = append(b.Signals, g)
		}
	}
	const evil = `"><script>alert(1)</script>' OR 1=1 --`
	add(5, "example.com", "/offer", "https://news.example/", nil)
	add(3, "example.com", "/offer", evil, nil)
	add(3, "example.com", "/offer", "", nil)
	add(1, "example.com", "/offer", "https://a.example/", nil)
	add(4, "example.com", "/other", "https://news.example/", nil)                                     // another path
	add(4, "other.example", "/offer", "https://news.example/", nil)                                   // another site
	add(4, "example.com", "/offer", "https://bot.example/", func(g *schemas.Signal) { g.Bot = true }) // bots
	add(4, "example.com", "/offer", "https://event.example/", func(g *schemas.Signal) { g.Type, g.Name = schemas.TypeEvent, "click" })
	add(4, "example.com", "/offer", "https://late.example/", func(g *schemas.Signal) { g.ReceivedAt = base + 10_000 })
	// The same signals again, as a retried batch stores them: each counts once.
	b.Signals = append(b.Signals, b.Signals[:5]...)
	if err := s.Write(ctx, &b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	f := sink.ReferrerFilter{Site: "example.com", Path: "/offer", FromMs: base, ToMs: base + 10_000, Limit: 10}
	for _, tc := range []struct {
		name string
		f    sink.ReferrerFilter
		want []sink.ReferrerCount
	}{
		{"most first, ties by referrer, none as \"\"", f, []sink.ReferrerCount{
			rc("https://news.example/", 5), rc("", 3), rc(evil, 3), rc("https://a.example/", 1)}},
		{"limit", func() sink.ReferrerFilter { g := f; g.Limit = 2; return g }(), []sink.ReferrerCount{
			rc("https://news.example/", 5), rc("", 3)}},
		{"any site", func() sink.ReferrerFilter { g := f; g.Site = ""; return g }(), []sink.ReferrerCount{
			rc("https://news.example/", 9), rc("", 3), rc(evil, 3), rc("https://a.example/", 1)}},
		{"a path with no pageviews", func() sink.ReferrerFilter { g := f; g.Path = evil; return g }(), nil},
	} {
		got, err := r.Referrers(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: Referrers: %v", tc.name, err)
		}
		if len(got) == 0 && len(tc.want) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: Referrers = %s, want %s", tc.name, fmt.Sprint(got), fmt.Sprint(tc.want))
		}
	}
}
