package stats

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/sqlite"
)

const hour = int64(time.Hour / time.Millisecond)

var testBase = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// seedQueries opens a SQLite sink and writes rollups with round numbers: landing pages
// /a 100 sessions (10 converting), /b 50 (10), /c 10 (5), "" 5 (0) on s.example and /a
// 7 (7) on other.example; experiment hero with control 1000 visitors (100 converted)
// and b 1000 (130); experiment tiny with control 40 (2) and b 45 (3).
func seedQueries(t *testing.T) Reader {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := &sink.Batch{}
	cell := func(site, path, src string, n, k int64) {
		b.Landing = append(b.Landing, sink.LandingCell{LandingKey: sink.LandingKey{Site: site, HourMs: testBase + hour,
			LandingPath: path, UTMSource: src}, Cell: 1, Sessions: n, Converted: k, Version: 1})
	}
	cell("s.example", "/a", "google", 60, 4)
	cell("s.example", "/a", "", 40, 6)
	cell("s.example", "/b", "google", 50, 10)
	cell("s.example", "/c", "", 10, 5)
	cell("s.example", "", "", 5, 0)
	cell("other.example", "/a", "", 7, 7)
	arm := func(exp, variant string, n, k int) {
		for i := 0; i < n; i++ {
			anon := fmt.Sprintf("%s-%s-%d", exp, variant, i)
			b.Exposures = append(b.Exposures, sink.Exposure{Site: "s.example", Experiment: exp, AnonymousID: anon,
				FirstMs: testBase + int64(i), Variant: variant})
			if i < k {
				b.Conversions = append(b.Conversions, sink.Conversion{Site: "s.example", AnonymousID: anon, LastMs: testBase + hour})
			}
		}
	}
	arm("hero", "control", 1000, 100)
	arm("hero", "b", 1000, 130)
	arm("tiny", "control", 40, 2)
	arm("tiny", "b", 45, 3)
	if err := st.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestLandingPagesQuery(t *testing.T) {
	st := seedQueries(t)
	q := NewQueries(st, Options{Now: func() time.Time { return time.UnixMilli(testBase + 2*hour) }})
	ctx := context.Background()
	paths := func(r *LandingReport) string {
		var s []string
		for _, p := range r.Pages {
			s = append(s, p.Path)
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct {
		q    LandingQuery
		want string
	}{
		{LandingQuery{Filter: Filter{Site: "s.example"}}, "/a,/b,/c,"},
		{LandingQuery{Filter: Filter{Site: "s.example"}, Sort: "cvr"}, "/c,/b,/a,"},
		{LandingQuery{Filter: Filter{Site: "s.example"}, Sort: "cvr_low"}, "/c,/b,/a,"},
		{LandingQuery{Filter: Filter{Site: "s.example"}, Sort: "converted", Order: "asc"}, ",/c,/a,/b"},
		{LandingQuery{Filter: Filter{Site: "s.example"}, Sort: "path"}, ",/a,/b,/c"},
		{LandingQuery{Filter: Filter{Site: "s.example"}, Limit: 2, Offset: 1}, "/b,/c"},
		{LandingQuery{Filter: Filter{Site: "s.example"}, Offset: 10}, ""},
		{LandingQuery{Filter: Filter{Site: "s.example", UTMSource: "google"}}, "/a,/b"},
		{LandingQuery{}, "/a,/b,/c,/a,"}, // every site, kept apart
		{LandingQuery{Filter: Filter{Site: "s.example", From: time.UnixMilli(testBase + 2*hour), To: time.UnixMilli(testBase + 3*hour)}}, ""},
	} {
		r, err := q.LandingPages(ctx, c.q)
		if err != nil {
			t.Fatalf("%+v: %v", c.q, err)
		}
		if got := paths(r); got != c.want {
			t.Errorf("%+v: pages %q, want %q", c.q, got, c.want)
		}
	}
	r, err := q.LandingPages(ctx, LandingQuery{Filter: Filter{Site: "s.example"}, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Total != 4 || r.Sessions != 165 || r.Converted != 25 || len(r.Pages) != 1 {
		t.Errorf("totals: %+v", r)
	}
	p := r.Pages[0]
	if p.Sessions != 100 || p.Converted != 10 || p.CVR != 0.1 || p.CI != Wilson(10, 100, Z95) {
		t.Errorf("/a: %+v", p)
	}
	if !r.From.Equal(time.UnixMilli(sinkHour(testBase + 2*hour - 30*24*hour))) {
		t.Errorf("default from %v", r.From)
	}
	for _, bad := range []LandingQuery{{Sort: "bounce"}, {Order: "up"}, {Limit: 5000}, {Offset: -1}, {Filter: Filter{From: time.UnixMilli(testBase), To: time.UnixMilli(testBase - 1)}}} {
		if _, err := q.LandingPages(ctx, bad); !errors.Is(err, ErrQuery) {
			t.Errorf("%+v: %v, want ErrQuery", bad, err)
		}
	}
}

func sinkHour(ms int64) int64 { return sink.HourMs(ms) }

func TestExperimentQuery(t *testing.T) {
	st := seedQueries(t)
	q := NewQueries(st, Options{})
	ctx := context.Background()
	r, err := q.Experiment(ctx, ExperimentQuery{ID: "hero"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Variants) != 2 || r.Visitors != 2000 || r.Converted != 230 || !r.EnoughData || len(r.Warnings) != 0 {
		t.Fatalf("hero: %+v", r)
	}
	c, b := r.Variants[0], r.Variants[1]
	if b.Name != "b" || c.Name != "control" || !c.Control || c.Lift != nil || b.Lift == nil {
		t.Fatalf("variants: %+v", r.Variants)
	}
	l := b.Lift
	lift, ci, _ := LiftInterval(130, 1000, 100, 1000, Z95)
	z, p, _ := ZTest(130, 1000, 100, 1000)
	if math.Abs(*l.Relative-0.3) > 1e-12 || *l.CI != ci || *l.Relative != lift || *l.Z != z || *l.PValue != p || !l.Significant {
		t.Errorf("lift: %+v", l)
	}
	if math.Abs(l.Difference-0.03) > 1e-12 || l.Sequential == nil || l.SequentialSignificant ||
		l.Sequential.Low > 0 || math.Abs(l.SequentialRelative.High-l.Sequential.High/0.1) > 1e-12 {
		t.Errorf("sequential: %+v %+v (1000 per arm is too early for the always-valid interval to exclude 0)", l.Sequential, l.SequentialRelative)
	}
	if r.SRM == nil || r.SRM.Mismatch || r.SRM.PValue != 1 || b.ExpectedShare != 0.5 || b.ObservedShare != 0.5 {
		t.Errorf("srm: %+v, shares %v %v", r.SRM, b.ExpectedShare, b.ObservedShare)
	}

	// Planned 2:1: the 50/50 observed is a mismatch.
	r, err = q.Experiment(ctx, ExperimentQuery{ID: "hero", Weights: map[string]float64{"control": 2, "b": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.SRM.Mismatch || r.SRM.PValue >= 0.001 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "sample ratio mismatch") {
		t.Errorf("2:1 plan: %+v %q", r.SRM, r.Warnings)
	}
	// A planned variant nobody saw is part of the split.
	r, err = q.Experiment(ctx, ExperimentQuery{ID: "hero", Weights: map[string]float64{"control": 1, "b": 1, "c": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Variants) != 3 || r.SRM.DF != 2 || !r.SRM.Mismatch || r.EnoughData {
		t.Errorf("an unseen planned variant: %+v", r)
	}
	// b as the control.
	r, err = q.Experiment(ctx, ExperimentQuery{ID: "hero", Control: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Variants[1].Lift == nil || math.Abs(*r.Variants[1].Lift.Relative-(0.1/0.13-1)) > 1e-12 {
		t.Errorf("control=b: %+v", r.Variants[1].Lift)
	}
	// Too small to read.
	r, err = q.Experiment(ctx, ExperimentQuery{ID: "tiny"})
	if err != nil {
		t.Fatal(err)
	}
	if r.EnoughData || len(r.Warnings) != 2 || !strings.Contains(r.Warnings[0], "wait for at least 100") {
		t.Errorf("tiny: %q", r.Warnings)
	}
	// Nothing there.
	r, err = q.Experiment(ctx, ExperimentQuery{ID: "nope"})
	if err != nil || r.EnoughData || len(r.Variants) != 0 || len(r.Warnings) != 1 {
		t.Errorf("unknown experiment: %+v, %v", r, err)
	}
	// First exposures in a range.
	r, err = q.Experiment(ctx, ExperimentQuery{ID: "hero", From: time.UnixMilli(testBase + 500)})
	if err != nil || r.Visitors != 1000 {
		t.Errorf("from +500ms: %d visitors, %v; want 500 per arm", r.Visitors, err)
	}
	for _, bad := range []ExperimentQuery{{}, {ID: "hero", Control: "zzz"}, {ID: "hero", Weights: map[string]float64{"control": 1}},
		{ID: "hero", Weights: map[string]float64{"control": -1, "b": 1}}} {
		if _, err := q.Experiment(ctx, bad); !errors.Is(err, ErrQuery) {
			t.Errorf("%+v: %v, want ErrQuery", bad, err)
		}
	}
	exps, err := q.Experiments(ctx, "")
	if err != nil || len(exps) != 2 || exps[0].Experiment != "hero" || exps[0].Visitors != 2000 {
		t.Errorf("experiments: %+v, %v", exps, err)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                          {},
		"now":                       now,
		"-7d":                       now.AddDate(0, 0, -7),
		"-36h":                      now.Add(-36 * time.Hour),
		"2024-03-01":                time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
		"2024-03-01T10:30":          time.Date(2024, 3, 1, 10, 30, 0, 0, time.UTC),
		"2024-03-01T10:30:00+02:00": time.Date(2024, 3, 1, 8, 30, 0, 0, time.UTC),
		"1709287200":                time.Unix(1709287200, 0).UTC(),
		"1709287200123":             time.UnixMilli(1709287200123).UTC(),
	} {
		got, err := ParseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "-xd", "2024-13-01", "-5y"} {
		if _, err := ParseTime(bad, now); !errors.Is(err, ErrQuery) {
			t.Errorf("ParseTime(%q): %v, want ErrQuery", bad, err)
		}
	}
	w, err := ParseWeights("control:2, b=1")
	if err != nil || w["control"] != 2 || w["b"] != 1 {
		t.Errorf("ParseWeights: %v, %v", w, err)
	}
	for _, bad := range []string{"control", "control:x", ":1", "b:0", "b:-1"} {
		if _, err := ParseWeights(bad); !errors.Is(err, ErrQuery) {
			t.Errorf("ParseWeights(%q): %v", bad, err)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"", "now", "-7d", "-36h", "2024-03-01", "2024-03-01T10:30", "1709287200", "1709287200123", "x"} {
		f.Add(s)
	}
	now := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s, now)
		if err != nil && !errors.Is(err, ErrQuery) {
			t.Fatalf("%q: an error that is not ErrQuery: %v", s, err)
		}
		if err != nil && !got.IsZero() {
			t.Fatalf("%q: a time with an error", s)
		}
	})
}

func FuzzParseWeights(f *testing.F) {
	for _, s := range []string{"control:1,b:1", "a=2", "", "x:", ":"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWeights(s)
		if err != nil {
			if !errors.Is(err, ErrQuery) || w != nil {
				t.Fatalf("%q: %v, %v", s, w, err)
			}
			return
		}
		for k, v := range w {
			if k == "" || !(v > 0) || math.IsInf(v, 0) {
				t.Fatalf("%q: accepted %q=%v", s, k, v)
			}
		}
	})
}
