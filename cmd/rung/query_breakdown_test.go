package main

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rungdev/rung/preagg/stats"
)

// The trend and sources commands print what the stats API answers, as a table or as
// its JSON.
func TestQueryTrendAndSources(t *testing.T) {
	dir, st := seedSQLite(t)
	q := stats.NewQueries(st, stats.Options{Goals: []string{"form_submitted"}})
	ctx := context.Background()
	f := stats.Filter{From: statsBase, To: statsBase.Add(24 * time.Hour)}
	rng := []string{"--data-dir", dir, "--from", "2024-03-01", "--to", "2024-03-02"}

	trend, err := q.Trend(ctx, stats.TrendQuery{Filter: f})
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, runQuery, nil, append([]string{"trend", "--json"}, rng...)...)
	if err != nil {
		t.Fatalf("query trend --json: %v\n%s", err, out)
	}
	var got stats.TrendReport
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, trend) || got.Total.Sessions == 0 || got.Interval != "hour" || len(got.Points) != 24 {
		t.Errorf("trend --json: %+v\nwant %+v", got, trend)
	}
	out, err = runCmd(t, runQuery, nil, append([]string{"trend"}, rng...)...)
	if err != nil {
		t.Fatalf("query trend: %v\n%s", err, out)
	}
	norm := strings.Join(strings.Fields(out), " ")
	for _, p := range trend.Points[:2] {
		line := p.Start.Format("2006-01-02 15:04") + " " + fmtCount(p.Sessions) + " " + fmtCount(p.Converted) + " " + fmtRate(p.CVR)
		if !strings.Contains(norm, line) {
			t.Errorf("trend lacks %q:\n%s", line, out)
		}
	}

	for _, by := range []string{"utm_source", "referrer"} {
		want, err := q.Sources(ctx, stats.SourcesQuery{Filter: f, By: by})
		if err != nil {
			t.Fatal(err)
		}
		out, err := runCmd(t, runQuery, nil, append([]string{"sources", "--by", by, "--json"}, rng...)...)
		if err != nil {
			t.Fatalf("query sources --by %s --json: %v\n%s", by, err, out)
		}
		var got stats.SourcesReport
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, want) || got.All.Sessions != want.All.Sessions || len(got.Sources) == 0 {
			t.Errorf("sources --by %s --json: %+v\nwant %+v", by, got, want)
		}
		// The referrer is read from raw signals, utm values from the rollup: both
		// count the same sessions.
		if got.All != trend.Total {
			t.Errorf("by %s: %+v, the trend has %+v", by, got.All, trend.Total)
		}
	}
	out, err = runCmd(t, runQuery, nil, append([]string{"sources"}, rng...)...)
	if err != nil {
		t.Fatalf("query sources: %v\n%s", err, out)
	}
	if norm := strings.Join(strings.Fields(out), " "); !strings.Contains(norm, "google ") || !strings.Contains(norm, "(none) ") {
		t.Errorf("sources table:\n%s", out)
	}
	if _, err := runCmd(t, runQuery, nil, append([]string{"sources", "--by", "country"}, rng...)...); err == nil ||
		!strings.Contains(err.Error(), "country") {
		t.Errorf("--by country: %v", err)
	}
}
