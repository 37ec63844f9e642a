// Package sinktest is the conformance suite every Sink passes: the same tests, run
// against ClickHouse and SQLite, so the two stores cannot drift apart.
package sinktest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Store is a Sink that can also be read back, as both implementations can: raw signals,
// the rollups, their recomputation from raw signals, and the open sessions to resume.
type Store interface {
	sink.Sink
	VisitorSignals(ctx context.Context, anonymousID string) ([]schemas.Signal, error)
	Signals(ctx context.Context, fromMs, toMs int64) ([]schemas.Signal, error)
	Newest(ctx context.Context, fromMs, toMs int64, n int) ([]schemas.Signal, error)
	LandingCounts(ctx context.Context, f sink.LandingFilter) ([]sink.LandingCount, error)
	VariantCounts(ctx context.Context, f sink.ExperimentFilter) ([]sink.VariantCount, error)
	Experiments(ctx context.Context, site string) ([]sink.ExperimentInfo, error)
	PreRolled(ctx context.Context, fromMs, toMs int64, rules sink.Rules) (*sink.Rollups, error)
	Recompute(ctx context.Context, fromMs, toMs int64, rules sink.Rules) (*sink.Rollups, error)
	RecomputeLanding(ctx context.Context, f sink.LandingFilter, rules sink.Rules) ([]sink.LandingCount, error)
	Resume(ctx context.Context, timeoutMs int64, scope sink.ResumeScope, each sink.ResumeFunc) (int, error)
}

// Optimizer is a Store whose background merges can be forced (ClickHouse): the suite
// then checks every answer is the same after them as before.
type Optimizer interface {
	Optimize(ctx context.Context) error
}

// Open returns a fresh, empty store; it registers its own cleanup.
type Open func(t *testing.T) Store

// Run runs the conformance suite.
func Run(t *testing.T, open Open) {
	t.Run("RoundTrip", func(t *testing.T) { roundTrip(t, open(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { concurrentWriters(t, open(t)) })
	t.Run("Empty", func(t *testing.T) { empty(t, open(t)) })
	t.Run("Rollups", func(t *testing.T) { rollups(t, open(t)) })
	t.Run("RetriedRollups", func(t *testing.T) { retriedRollups(t, open(t)) })
	t.Run("Recompute", func(t *testing.T) { recompute(t, open(t)) })
	t.Run("Resume", func(t *testing.T) { resume(t, open) })
	t.Run("Landed", func(t *testing.T) { landed(t, open(t)) })
	t.Run("Referrers", func(t *testing.T) { referrers(t, open(t)) })
	t.Run("Breakdowns", func(t *testing.T) { breakdowns(t, open(t)) })
	t.Run("Newest", func(t *testing.T) { newest(t, open(t)) })
}

const base = int64(1_700_000_000_000)

func signal(i int) schemas.Signal {
	return schemas.Signal{
		Type: schemas.TypePageview, ReceivedAt: base + int64(i), Site: "example.com",
		AnonymousID: fmt.Sprintf("visitor-%04d", i%7), EventID: fmt.Sprintf("event-%06d", i),
		URL: "https://example.com/p", Path: "/p",
	}
}

func roundTrip(t *testing.T, s Store) {
	ctx := context.Background()
	want := []schemas.Signal{
		{Type: schemas.TypePageview, ReceivedAt: base, EventAt: base - 40*60_000, Seq: 1 << 60, Site: "example.com", AnonymousID: "visitor-rt",
			EventID: "event-rt-1", URL: "https://example.com/a?utm_source=x", Path: "/a",
			Referrer: "https://ref.example/", UTMSource: "x", UTMMedium: "cpc", UTMCampaign: "spring",
			UTMTerm: "t", UTMContent: "c", Props: `{"plan":"pro","n":3}`},
		{Type: schemas.TypeEvent, ReceivedAt: base + 1, EventAt: base + 1, Seq: 2, Site: "example.com", AnonymousID: "visitor-rt",
			EventID: "event-rt-2", Name: "form_submitted", Value: 0, HasValue: true, Bot: true},
		{Type: schemas.TypeExposure, ReceivedAt: base + 2, EventAt: base + 2, Seq: 3, Site: "example.com", AnonymousID: "visitor-rt",
			EventID: "event-rt-3", Experiment: "hero", Variant: "b", URL: "https://example.com/é", Path: "/é",
			Referrer: `<script>alert("x")</script>`},
		{Type: schemas.TypeEvent, ReceivedAt: base + 3, EventAt: base + 3, Seq: 4, Site: "example.com", AnonymousID: "visitor-rt",
			EventID: "event-rt-4", Name: "purchase", Value: -12.25, HasValue: true},
	}
	if err := s.Write(ctx, &sink.Batch{Signals: want}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, err := s.VisitorSignals(ctx, "visitor-rt")
	if err != nil {
		t.Fatalf("VisitorSignals: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("read %d signals back, wrote %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("signal %d:\n got  %+v\n want %+v", i, got[i], want[i])
		}
	}
	if got, _ := s.VisitorSignals(ctx, "nobody-here"); len(got) != 0 {
		t.Errorf("unknown visitor: got %d signals", len(got))
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func concurrentWriters(t *testing.T, s Store) {
	ctx := context.Background()
	const writers, per = 4, 250
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := &sink.Batch{}
			for i := 0; i < per; i++ {
				b.Signals = append(b.Signals, signal(w*per+i))
			}
			if err := s.Write(ctx, b); err != nil {
				t.Errorf("writer %d: %v", w, err)
			}
		}()
	}
	wg.Wait()
	got, err := s.Signals(ctx, base, base+writers*per)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(got))
	for i, g := range got {
		ids[i] = g.EventID
	}
	sort.Strings(ids)
	if len(ids) != writers*per {
		t.Fatalf("stored %d signals, want %d", len(ids), writers*per)
	}
	for i, id := range ids {
		if want := fmt.Sprintf("event-%06d", i); id != want {
			t.Fatalf("ids[%d] = %s, want %s", i, id, want)
		}
	}
}

func empty(t *testing.T, s Store) {
	if err := s.Write(context.Background(), &sink.Batch{}); err != nil {
		t.Fatalf("Write of an empty batch: %v", err)
	}
}
