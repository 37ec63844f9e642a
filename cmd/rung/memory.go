package main

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/sink/clickhouse"
)

// sessionBytes is what the memory limit allows for each open session: a visitor, its
// map slot and its share of the sessionizer's bookkeeping (about half of this live, the
// rest room for the collector to work in).
const sessionBytes = 1 << 10

// workingMemory is a sink that states the memory it works in while it writes flushes
// holding inFlight bytes of signals (as the buffer charges them).
type workingMemory interface {
	WorkingMemory(inFlight int64) int64
}

var _ workingMemory = (*clickhouse.ClickHouse)(nil)

// memoryLimit is the soft limit rung serve gives the Go runtime (debug.SetMemoryLimit)
// unless GOMEMLIMIT is set: what the buffer may hold (--buffer-bytes and
// buffer.Overhead), the sink's working memory for the flushes the buffer lets run at
// once, and sessionBytes for each open session. Without it the garbage collector lets
// the heap grow to twice what is live before it collects (GOGC=100), so a buffer kept
// full, with the sink's columns beside it, makes the process several times
// --buffer-bytes; with it the garbage collector works sooner as the heap nears what
// rung may hold. It is soft: what is live is never collected, so a process holding
// more than it states (a sink that does not state its memory, a store outside Go's
// heap such as SQLite's page cache) goes past it, the garbage collector working harder.
type memoryLimit struct {
	base int64
	open func() int // open sessions
}

func newMemoryLimit(bcfg buffer.Config, s store, open func() int) memoryLimit {
	base := bcfg.MaxBytes + buffer.Overhead(bcfg)
	if w, ok := s.(workingMemory); ok {
		base += w.WorkingMemory(buffer.InFlight(bcfg))
	}
	return memoryLimit{base: base, open: open}
}

func (m memoryLimit) bytes() int64 { return m.base + int64(m.open())*sessionBytes }

// run keeps the runtime's limit at bytes, as sessions open and close, until ctx ends,
// and then puts back the limit it found.
func (m memoryLimit) run(ctx context.Context, set *metrics.Set, log *slog.Logger) error {
	set.NewGauge(`rung_memory_limit_bytes`, func() float64 { return float64(debug.SetMemoryLimit(-1)) })
	prev := debug.SetMemoryLimit(m.bytes())
	defer debug.SetMemoryLimit(prev)
	log.Info("memory limit for the garbage collector (GOMEMLIMIT overrides)", "bytes", m.bytes())
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			debug.SetMemoryLimit(m.bytes())
		}
	}
}
