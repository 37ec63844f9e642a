package clickhouse

import (
	"context"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// group commits concurrent flushes together: their rollup rows, the counted rows of the
// signals they count that other flushes stored, and their markers (counted.go). Every
// INSERT costs the server a part, and a merge of it later, whatever its size; rollup
// batches are small, so parts, not rows, are what pre-aggregation costs ClickHouse. No
// goroutine is started: the first flush to submit leads. It waits, up to linger, for
// the flushes still inserting their raw signals to submit too, writes everything
// pending in one INSERT per table, and hands the lead to the next flush waiting. Under
// load the four flushers' rollups go in one part per table; alone, a flush does not
// wait at all.
//
// A flush returns only once its rows are written or failed, so its batch is never read
// after Write returns. Rows of concurrent flushes never share a key (the pre-aggregator
// gives each flush its own lanes), and rollup rows are idempotent besides, so merging
// them changes nothing.
type group struct {
	mu       sync.Mutex
	writing  bool
	pending  []*submission
	inflight int           // flushes that will submit: past begin, not yet submitted
	arrived  chan struct{} // pokes a waiting leader; capacity 1
	merged   sink.Batch    // reused by the leader; guarded by the lead
	merging  []flushed     // the flushes merged; reused by the leader, guarded by the lead
	linger   time.Duration
	// write stores m, the rollup rows of the flushes fs, and commits fs.
	write func(ctx context.Context, m *sink.Batch, fs []flushed) error

	groups, flushes *metrics.Counter // writes, and the flushes they carried
}

// flushed is a flush whose signals are stored, with the id they carry, whose marker
// commits their count (counted.go), and the signals of the flush that rows of another
// flush held (insertSignals).
type flushed struct {
	b       *sink.Batch
	id      uint64
	adopted []schemas.Signal
}

type submission struct {
	flushed
	done chan groupResult
}

type groupResult struct {
	lead bool // the submission now leads: it writes what is pending
	err  error
}

func newGroup(linger time.Duration, write func(context.Context, *sink.Batch, []flushed) error, set *metrics.Set) *group {
	return &group{arrived: make(chan struct{}, 1), linger: linger, write: write,
		groups:  set.GetOrCreateCounter(`rung_sink_rollup_groups_total`),
		flushes: set.GetOrCreateCounter(`rung_sink_rollup_group_flushes_total`)}
}

// begin announces a flush that will call commit (or abandon).
func (g *group) begin() {
	g.mu.Lock()
	g.inflight++
	g.mu.Unlock()
}

// abandon withdraws a begin that will not submit.
func (g *group) abandon() {
	g.mu.Lock()
	g.inflight--
	g.mu.Unlock()
	g.poke()
}

func (g *group) poke() {
	select {
	case g.arrived <- struct{}{}:
	default:
	}
}

// commit writes the rollup rows of f, with those of the flushes alongside, and commits
// them. The caller called begin.
func (g *group) commit(ctx context.Context, f flushed) error {
	b := f.b
	s := &submission{flushed: f, done: make(chan groupResult, 1)}
	g.mu.Lock()
	g.inflight--
	g.pending = append(g.pending, s)
	if g.writing {
		g.mu.Unlock()
		g.poke()
		if r := <-s.done; !r.lead {
			return r.err
		}
		g.mu.Lock()
	}
	g.writing = true
	if g.inflight > 0 {
		deadline := time.NewTimer(g.linger)
	wait:
		for g.inflight > 0 {
			g.mu.Unlock()
			select {
			case <-g.arrived:
				g.mu.Lock()
			case <-deadline.C:
				g.mu.Lock()
				break wait
			case <-ctx.Done():
				g.mu.Lock()
				break wait
			}
		}
		deadline.Stop()
	}
	batch := g.pending
	g.pending = nil
	g.mu.Unlock()

	m := &g.merged
	if len(batch) == 1 {
		m = b
	} else {
		for _, x := range batch {
			m.Landing = append(m.Landing, x.b.Landing...)
			m.Exposures = append(m.Exposures, x.b.Exposures...)
			m.Conversions = append(m.Conversions, x.b.Conversions...)
		}
	}
	fs := g.merging[:0]
	for _, x := range batch {
		fs = append(fs, x.flushed)
	}
	err := g.write(ctx, m, fs)
	clear(fs)
	g.merging = fs[:0]
	g.groups.Inc()
	g.flushes.Add(len(batch))
	if m == &g.merged {
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
