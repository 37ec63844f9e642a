package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// BenchmarkBreakdowns measures what the dashboard's panels cost over one day of 20,000
// sessions (two signals each, one landing cell per session): the breakdowns read from
// the hourly rollup against the sources by referrer and the bot count, read from the
// raw signals. Compare the ratios of one run:
//
//	go test -run '^$' -bench Breakdowns -benchtime 20x ./sink/sqlite
func BenchmarkBreakdowns(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "sink.db"), metrics.NewSet())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const sessions = 20_000
	h0 := sink.HourMs(1_700_000_000_000)
	batch := &sink.Batch{}
	for i := range sessions {
		start := h0 + int64(i)*86_400_000/sessions
		site, path, src := "s.example", fmt.Sprintf("/p%d", i%20), fmt.Sprintf("src%d", i%5)
		anon := fmt.Sprintf("v%06d", i)
		batch.Signals = append(batch.Signals,
			schemas.Signal{Type: schemas.TypePageview, Site: site, AnonymousID: anon, EventID: anon + "-pv", ReceivedAt: start,
				Path: path, UTMSource: src, Referrer: fmt.Sprintf("https://ref%d.example/", i%50), Bot: i%100 == 0},
			schemas.Signal{Type: schemas.TypeEvent, Site: site, AnonymousID: anon, EventID: anon + "-ev", ReceivedAt: start + 1000,
				Name: []string{"form_submitted", "click"}[i%2]})
		batch.SessionMs = append(batch.SessionMs, start, start)
		batch.Landing = append(batch.Landing, sink.LandingCell{LandingKey: sink.LandingKey{Site: site, HourMs: sink.HourMs(start),
			LandingPath: path, UTMSource: src}, Cell: uint64(i), Sessions: 1, Converted: int64(1 - i%2), Version: 1})
	}
	if err := s.Write(ctx, batch); err != nil {
		b.Fatal(err)
	}
	f := sink.LandingFilter{FromMs: h0, ToMs: h0 + 86_400_000}
	for _, bc := range []struct {
		name string
		run  func() (int, error)
	}{
		{"rollup/by-page", func() (int, error) {
			g, err := s.LandingGroups(ctx, f, []string{"site", "landing_path"})
			return len(g), err
		}},
		{"rollup/by-utm_source", func() (int, error) { g, err := s.LandingGroups(ctx, f, []string{"utm_source"}); return len(g), err }},
		{"rollup/per-hour", func() (int, error) { g, err := s.LandingSeries(ctx, f, 3600_000); return len(g), err }},
		{"raw/by-referrer", func() (int, error) {
			g, err := s.SessionReferrers(ctx, f, []string{"form_submitted"})
			return len(g), err
		}},
		{"raw/bot-signals", func() (int, error) {
			n, err := s.BotSignals(ctx, "", f.FromMs, f.ToMs)
			return int(n), err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if n, err := bc.run(); err != nil || n == 0 {
					b.Fatalf("%d rows, %v", n, err)
				}
			}
		})
	}
}
