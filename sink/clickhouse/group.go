package clickhouse

import (
	"context"
	"sync"

	"github.com/rungdev/rung/sink"
)

// group commits the rollup rows of concurrent flushes together: every INSERT costs the
// server a part whatever its size, and rollup batches are small, so flushes that arrive
// while one write is in progress share the next one. No goroutine is started: the first
// flush to arrive leads, writes what is pending, and hands the lead to the next one
// waiting. A flush returns only once its rows are written or failed, so its batch is
// never read after Write returns.
//
// Rows of concurrent flushes never share a key (the pre-aggregator gives each flush its
// own lanes), and rollup rows are idempotent besides, so merging them changes nothing.
type group struct {
	mu      sync.Mutex
	writing bool
	pending []*submission
	merged  sink.Batch // reused by the leader; guarded by the lead
	write   func(ctx context.Context, b *sink.Batch) error
}

type submission struct {
	b    *sink.Batch
	done chan groupResult
}

type groupResult struct {
	lead bool // the submission now leads: it writes what is pending
	err  error
}

// commit writes b's rollup rows, with those of any flushes waiting alongside.
func (g *group) commit(ctx context.Context, b *sink.Batch) error {
	s := &submission{b: b, done: make(chan groupResult, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, s)
	if g.writing {
		g.mu.Unlock()
		if r := <-s.done; !r.lead {
			return r.err
		}
		g.mu.Lock()
	}
	g.writing = true
	batch := g.pending
	g.pending = nil
	g.mu.Unlock()

	m := &g.merged
	if len(batch) == 1 {
		m = b
	} else {
		for _, x := range batch {
			m.Sessions = append(m.Sessions, x.b.Sessions...)
			m.Landing = append(m.Landing, x.b.Landing...)
			m.Exposures = append(m.Exposures, x.b.Exposures...)
			m.Conversions = append(m.Conversions, x.b.Conversions...)
		}
	}
	err := g.write(ctx, m)
	if m == &g.merged {
		clear(m.Sessions)
		clear(m.Landing)
		clear(m.Exposures)
		clear(m.Conversions)
		m.Reset()
	}

	g.mu.Lock()
	if len(g.pending) > 0 {
		g.pending[0].done <- groupResult{lead: true}
	} else {
		g.writing = false
	}
	g.mu.Unlock()
	for _, x := range batch {
		if x != s {
			x.done <- groupResult{err: err}
		}
	}
	return err
}
