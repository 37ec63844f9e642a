// Package discard owns the sink that keeps nothing: `rung serve --sink discard`. It is a
// benchmarking and testing aid only, like Vector's blackhole sink: the collector, the
// buffer, its flushers and the pre-aggregator run exactly as in production, with their
// memory reused, and the batch they produce is counted and forgotten. That makes the
// steady state of the ingest path measurable on its own (bench/wrk/compare.sh STEADY=1),
// without a store sharing the cores or a heap that only grows.
//
// Nothing written to it can be read back: every query answers empty, a restart restores
// no session, and what was accepted is lost. Never run it where the data matters.
package discard

import (
	"context"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Sink discards every batch it is given and counts its rows, by table, in
// rung_sink_rows_discarded_total. It is safe for concurrent use.
type Sink struct {
	signals, landing, visitors *metrics.Counter
}

var _ sink.Sink = (*Sink)(nil)

// New makes a Sink counting in set.
func New(set *metrics.Set) *Sink {
	return &Sink{
		signals:  set.GetOrCreateCounter(`rung_sink_rows_discarded_total{table="signals"}`),
		landing:  set.GetOrCreateCounter(`rung_sink_rows_discarded_total{table="landing_hourly"}`),
		visitors: set.GetOrCreateCounter(`rung_sink_rows_discarded_total{table="visitors"}`),
	}
}

// Write counts b's rows and keeps nothing of it.
func (s *Sink) Write(_ context.Context, b *sink.Batch) error {
	s.signals.Add(len(b.Signals))
	if n := len(b.Landing); n > 0 {
		s.landing.Add(n)
	}
	if n := len(b.Exposures) + len(b.Conversions); n > 0 {
		s.visitors.Add(n)
	}
	return nil
}

// Discarded returns how many signals the Sink has discarded.
func (s *Sink) Discarded() uint64 { return s.signals.Get() }

// Ping always answers: there is nothing to reach.
func (*Sink) Ping(context.Context) error { return nil }

// Close does nothing.
func (*Sink) Close() error { return nil }

// The reads below answer as an empty store would.

func (*Sink) VariantCounts(context.Context, sink.ExperimentFilter) ([]sink.VariantCount, error) {
	return nil, nil
}

func (*Sink) Experiments(context.Context, string) ([]sink.ExperimentInfo, error) { return nil, nil }

func (*Sink) Referrers(context.Context, sink.ReferrerFilter) ([]sink.ReferrerCount, error) {
	return nil, nil
}

func (*Sink) LandingGroups(context.Context, sink.LandingFilter, []string) ([]sink.GroupCount, error) {
	return nil, nil
}

func (*Sink) LandingSeries(context.Context, sink.LandingFilter, int64) ([]sink.SeriesCount, error) {
	return nil, nil
}

func (*Sink) SessionReferrers(context.Context, sink.LandingFilter, []string) ([]sink.GroupCount, error) {
	return nil, nil
}

func (*Sink) BotSignals(context.Context, string, int64, int64) (int64, error) { return 0, nil }

// Resume has no session to restore.
func (*Sink) Resume(context.Context, int64, sink.ResumeScope, sink.ResumeFunc) (int, error) {
	return 0, nil
}

// Landed holds none of the signals.
func (*Sink) Landed(context.Context, []schemas.Signal) (map[sink.Key]bool, error) { return nil, nil }

func (*Sink) VisitorSignals(context.Context, string) ([]schemas.Signal, error) { return nil, nil }

func (*Sink) MigrateQuarantine(context.Context) error { return nil }

// WriteQuarantine discards the rejected signals too.
func (*Sink) WriteQuarantine(context.Context, []schemas.Quarantined) error { return nil }

func (*Sink) PruneQuarantine(context.Context, int64) error { return nil }

func (*Sink) Quarantined(context.Context, string, int) ([]schemas.Quarantined, error) {
	return nil, nil
}

// Signals, Newest, PreRolled and Recompute read back nothing: nothing was kept.
func (*Sink) Signals(context.Context, int64, int64) ([]schemas.Signal, error) { return nil, nil }

func (*Sink) Newest(context.Context, int64, int64, int) ([]schemas.Signal, error) { return nil, nil }

func (*Sink) PreRolled(context.Context, int64, int64, sink.Rules) (*sink.Rollups, error) {
	return &sink.Rollups{}, nil
}

func (*Sink) Recompute(context.Context, int64, int64, sink.Rules) (*sink.Rollups, error) {
	return &sink.Rollups{}, nil
}
