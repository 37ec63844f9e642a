package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Health passes writes to a sink and watches how they end, for /readyz and the log: a
// write the sink gave up on makes Ready fail with the sink's name and the error until a
// write succeeds again, and is logged with its table, class and error, at most once per
// LogEvery (with how many were left out). A write cut short by its context (shutdown) is
// neither: the buffer counts it.
type Health struct {
	name string
	s    Sink
	log  *slog.Logger

	mu         sync.Mutex
	failed     error // of the last write, nil once one succeeds
	failedAt   time.Time
	loggedAt   time.Time
	suppressed int

	failures [Permanent + 1]*metrics.Counter // batches given up, by class
}

const (
	// LogEvery is the least time between two log lines of failed writes.
	LogEvery = 10 * time.Second
	// failingFor is how long one failed write keeps Ready failing when no write follows:
	// a node taken out of rotation for it gets no traffic to prove it recovered, so it
	// falls back to Ping.
	failingFor = time.Minute
)

// NewHealth watches writes to s, named name in /readyz and the log.
func NewHealth(name string, s Sink, log *slog.Logger, set *metrics.Set) *Health {
	h := &Health{name: name, s: s, log: log}
	for c := range h.failures {
		h.failures[c] = set.GetOrCreateCounter(`rung_sink_write_failures_total{class="` + Class(c).String() + `"}`)
	}
	return h
}

// Write writes b to the sink and records how it ended.
func (h *Health) Write(ctx context.Context, b *Batch) error {
	err := h.s.Write(ctx, b)
	if err != nil && ctx.Err() != nil {
		return err
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		if h.failed != nil {
			h.log.Info("sink writes again", "sink", h.name, "failed_writes_not_logged", h.suppressed)
			h.failed, h.suppressed = nil, 0
		}
		return nil
	}
	h.failed, h.failedAt = err, now
	we := &WriteError{Class: Transient, Attempts: 1, Err: err}
	errors.As(err, &we)
	h.failures[we.Class].Inc()
	if now.Sub(h.loggedAt) < LogEvery {
		h.suppressed++
		return err
	}
	h.log.Error("sink write failed: batch dropped", "sink", h.name, "table", we.Table, "class", we.Class.String(),
		"attempts", we.Attempts, "signals", len(b.Signals), "failed_writes_not_logged", h.suppressed, "err", err)
	h.loggedAt, h.suppressed = now, 0
	return err
}

// Ready reports whether the sink takes writes: not while its last write failed (for up
// to a minute after it, if no other follows), and not while it does not answer Ping.
func (h *Health) Ready(ctx context.Context) error {
	h.mu.Lock()
	failed, at := h.failed, h.failedAt
	h.mu.Unlock()
	if failed != nil && time.Since(at) < failingFor {
		return fmt.Errorf("sink %s: last write failed %s ago: %w", h.name, time.Since(at).Round(time.Second), failed)
	}
	if err := h.s.Ping(ctx); err != nil {
		return fmt.Errorf("sink %s: %w", h.name, err)
	}
	return nil
}
