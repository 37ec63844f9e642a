package stats

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

func TestTrendQuery(t *testing.T) {
	st := seedQueries(t)
	q := NewQueries(st, Options{Now: func() time.Time { return time.UnixMilli(testBase + 3*hour) }})
	ctx := context.Background()
	r, err := q.Trend(ctx, TrendQuery{Filter: Filter{Site: "s.example", From: time.UnixMilli(testBase + 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Interval != "hour" || len(r.Points) != 3 {
		t.Fatalf("trend over 3 hours: interval %s, %d points", r.Interval, len(r.Points))
	}
	for i, want := range []Counts{counts(0, 0), counts(165, 25), counts(0, 0)} {
		p := r.Points[i]
		if !p.Start.Equal(time.UnixMilli(testBase+int64(i)*hour)) || p.Counts != want {
			t.Errorf("point %d: %+v, want %+v at %v", i, p, want, time.UnixMilli(testBase+int64(i)*hour).UTC())
		}
	}
	if r.Total != counts(165, 25) {
		t.Errorf("total %+v", r.Total)
	}
	// The default range is 30 days: by the day, from the first day's midnight.
	r, err = q.Trend(ctx, TrendQuery{Filter: Filter{UTMSource: "google"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Interval != "day" || len(r.Points) != 31 || r.Total != counts(110, 14) {
		t.Errorf("30 days: interval %s, %d points, total %+v", r.Interval, len(r.Points), r.Total)
	}
	if last := r.Points[len(r.Points)-1]; !last.Start.Equal(time.UnixMilli(testBase)) || last.Counts != counts(110, 14) {
		t.Errorf("last day %+v", last)
	}
	for _, bad := range []TrendQuery{{Interval: "week"}, {Interval: "hour", Filter: Filter{From: time.UnixMilli(testBase - 400*24*hour)}}} {
		if _, err := q.Trend(ctx, bad); !errors.Is(err, ErrQuery) {
			t.Errorf("%+v: %v, want ErrQuery", bad, err)
		}
	}
}

func TestSourcesQuery(t *testing.T) {
	st := seedQueries(t)
	now := func() time.Time { return time.UnixMilli(testBase + 3*hour) }
	ctx := context.Background()
	q := NewQueries(st, Options{Now: now})
	r, err := q.Sources(ctx, SourcesQuery{Filter: Filter{Site: "s.example"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Source{{"google", counts(110, 14)}, {"", counts(55, 11)}}
	if r.By != "utm_source" || r.Total != 2 || len(r.Sources) != 2 || r.Sources[0] != want[0] || r.Sources[1] != want[1] || r.All != counts(165, 25) {
		t.Errorf("by utm_source: %+v", r)
	}
	if r, err = q.Sources(ctx, SourcesQuery{By: "utm_source", Limit: 1}); err != nil || len(r.Sources) != 1 || r.Total != 2 ||
		r.Sources[0] != (Source{"google", counts(110, 14)}) {
		t.Errorf("every site, limit 1: %+v, %v", r, err)
	}
	for _, bad := range []SourcesQuery{{By: "country"}, {Limit: -1}, {By: "referrer"}} {
		if _, err := q.Sources(ctx, bad); !errors.Is(err, ErrQuery) {
			t.Errorf("%+v: %v, want ErrQuery (goals unknown for the referrer)", bad, err)
		}
	}

	// By referrer, from the raw signals: hosts of one site's pages count together.
	var b sink.Batch
	add := func(anon, id, ref string, typ schemas.Type, at int64) {
		g := schemas.Signal{Type: typ, Site: "s.example", AnonymousID: anon, EventID: id, ReceivedAt: testBase + hour + at,
			Referrer: ref, Path: "/a", Name: "signup"}
		b.Signals = append(b.Signals, g)
		b.SessionMs = append(b.SessionMs, testBase+hour)
	}
	add("r1", "r1-pv", "https://www.News.example/a", schemas.TypePageview, 0)
	add("r1", "r1-goal", "", schemas.TypeEvent, 5)
	add("r2", "r2-pv", "https://news.example/b?q=1", schemas.TypePageview, 0)
	add("r3", "r3-pv", "", schemas.TypePageview, 0)
	add("r4", "r4-pv", "android-app://com.example", schemas.TypePageview, 0)
	if err := st.(sink.Sink).Write(ctx, &b); err != nil {
		t.Fatal(err)
	}
	q = NewQueries(st, Options{Now: now, Goals: []string{"signup"}})
	r, err = q.Sources(ctx, SourcesQuery{Filter: Filter{Site: "s.example"}, By: "referrer"})
	if err != nil {
		t.Fatal(err)
	}
	want = []Source{{"news.example", counts(2, 1)}, {"", counts(1, 0)}, {"com.example", counts(1, 0)}}
	if len(r.Sources) != len(want) {
		t.Fatalf("by referrer: %+v", r.Sources)
	}
	for i := range want {
		if r.Sources[i] != want[i] {
			t.Errorf("by referrer, row %d: %+v, want %+v", i, r.Sources[i], want[i])
		}
	}
}

func TestSites(t *testing.T) {
	q := NewQueries(seedQueries(t), Options{Now: func() time.Time { return time.UnixMilli(testBase + 3*hour) }})
	sites, err := q.Sites(context.Background(), Filter{Site: "ignored", UTMSource: "ignored"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 2 || sites[0] != (Source{"s.example", counts(165, 25)}) || sites[1] != (Source{"other.example", counts(7, 7)}) {
		t.Errorf("sites %+v", sites)
	}
}
