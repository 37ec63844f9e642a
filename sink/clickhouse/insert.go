package clickhouse

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// signalColumns are the columns of the signals table rung writes, in the order of its
// INSERT, each with how its values are taken from a batch. A new column is one line
// here (and one in ddl.go).
var signalColumns = []struct {
	name string
	new  func() builder
}{
	{"date", of(func(b *sink.Batch, i int) time.Time { return utc(b.Signals[i].ReceivedAt) })},
	{"received_at", of(func(b *sink.Batch, i int) time.Time { return utc(b.Signals[i].ReceivedAt) })},
	{"received_ms", of(func(b *sink.Batch, i int) int64 { return b.Signals[i].ReceivedAt })},
	{"event_id", str(func(g *schemas.Signal) string { return g.EventID })},
	{"type", str(func(g *schemas.Signal) string { return g.Type.String() })},
	{"site", str(func(g *schemas.Signal) string { return g.Site })},
	{"anonymous_id", str(func(g *schemas.Signal) string { return g.AnonymousID })},
	{"bot", of(func(b *sink.Batch, i int) uint8 {
		if b.Signals[i].Bot {
			return 1
		}
		return 0
	})},
	{"url", str(func(g *schemas.Signal) string { return g.URL })},
	{"path", str(func(g *schemas.Signal) string { return g.Path })},
	{"referrer", str(func(g *schemas.Signal) string { return g.Referrer })},
	{"utm_source", str(func(g *schemas.Signal) string { return g.UTMSource })},
	{"utm_medium", str(func(g *schemas.Signal) string { return g.UTMMedium })},
	{"utm_campaign", str(func(g *schemas.Signal) string { return g.UTMCampaign })},
	{"utm_term", str(func(g *schemas.Signal) string { return g.UTMTerm })},
	{"utm_content", str(func(g *schemas.Signal) string { return g.UTMContent })},
	{"name", str(func(g *schemas.Signal) string { return g.Name })},
	{"experiment", str(func(g *schemas.Signal) string { return g.Experiment })},
	{"variant", str(func(g *schemas.Signal) string { return g.Variant })},
	// The pointer is into the batch, which outlives the insert.
	{"value", of(func(b *sink.Batch, i int) *float64 {
		if g := &b.Signals[i]; g.HasValue {
			return &g.Value
		}
		return nil
	})},
	{"props", str(func(g *schemas.Signal) string { return g.Props })},
	{"session_ms", of(func(b *sink.Batch, i int) int64 { return b.SessionOf(i) })},
	{"event_ms", of(func(b *sink.Batch, i int) int64 { return b.Signals[i].At() })},
	{"seq", of(func(b *sink.Batch, i int) uint64 { return b.Signals[i].Seq })},
}

// insertSignals is the INSERT of signalColumns and the flush column, with %s for the
// table.
var insertSignals = func() string {
	names := make([]string, len(signalColumns), len(signalColumns)+1)
	for i, c := range signalColumns {
		names[i] = c.name
	}
	return "INSERT INTO %s (" + strings.Join(append(names, "flush"), ", ") + ")"
}()

func utc(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// builder is one column of a batch being built: values are added row by row, and the
// column is handed to clickhouse-go as a slice.
type builder interface {
	add(b *sink.Batch, i int)
	values() any
	// reset empties the column, keeping its capacity, and drops its references into the
	// batch so the request bodies they lie in can be collected.
	reset()
}

// col is a builder of a column of values of type T.
type col[T any] struct {
	v   []T
	get func(b *sink.Batch, i int) T
}

func (c *col[T]) add(b *sink.Batch, i int) { c.v = append(c.v, c.get(b, i)) }
func (c *col[T]) values() any              { return c.v }
func (c *col[T]) reset()                   { clear(c.v); c.v = c.v[:0] }

// of makes builders of a column whose values get takes from row i of a batch.
func of[T any](get func(b *sink.Batch, i int) T) func() builder {
	return func() builder { return &col[T]{get: get} }
}

// str makes builders of a String column taken from each signal: most of the columns,
// so their values are taken in one call rather than through of's.
func str(get func(g *schemas.Signal) string) func() builder {
	return func() builder { return &strCol{get: get} }
}

// strCol is a builder of a String column.
type strCol struct {
	runs
	get func(g *schemas.Signal) string
}

func (c *strCol) add(b *sink.Batch, i int) { c.v = append(c.v, c.get(&b.Signals[i])) }
func (c *strCol) values() any              { return &c.runs }
func (c *strCol) reset()                   { clear(c.v); c.v = c.v[:0] }

// runs is a String column that insert copies into the driver's columns stringRun rows
// at a time. It keeps each run as the driver takes it, an interface holding a slice,
// across flushes while its memory stays where it was: making them anew would allocate
// every run of every flush.
type runs struct {
	v     []string
	boxes []any
}

// run returns the values of run k.
func (r *runs) run(k int) any {
	from, to := k*stringRun, min((k+1)*stringRun, len(r.v))
	if from >= to {
		return r.v[:0]
	}
	if k < len(r.boxes) {
		if b := r.boxes[k].([]string); len(b) == to-from && &b[0] == &r.v[from] {
			return r.boxes[k]
		}
		if k == 0 { // moved: the rest are of the old memory, which they would keep
			clear(r.boxes)
			r.boxes = r.boxes[:0]
		}
	}
	box := any(r.v[from:to])
	if k < len(r.boxes) {
		r.boxes[k] = box
	} else if k == len(r.boxes) {
		r.boxes = append(r.boxes, box)
	}
	return box
}

// columns holds one batch's signals in columnar form; reused through a pool.
type columns struct {
	cols []builder
	// The flush column: the id of the flush whose marker commits the rows' count, the
	// same for every row of a batch (counted.go).
	flushes []uint64
	order   order
	n       int
}

func newColumns() *columns {
	k := &columns{cols: make([]builder, len(signalColumns))}
	for i, c := range signalColumns {
		k.cols[i] = c.new()
	}
	return k
}

// fill puts the signals of b, counted by flush, into k: those of shard s when shards is
// given (the shard of each signal), all of them when it is nil. They go in the order of
// the signals table's key, so that the server finds the block sorted and stores it as
// it comes: its sort of a block permutes every column, ours orders row numbers.
func (k *columns) fill(b *sink.Batch, flush uint64, shards []int, s int) {
	k.order.sort(b.Signals, shards, s)
	for _, r := range k.order.keys {
		for _, c := range k.cols {
			c.add(b, int(r.i))
		}
		k.flushes = append(k.flushes, flush)
	}
	k.n = len(k.order.keys)
}

func (k *columns) list() []any {
	out := make([]any, len(k.cols), len(k.cols)+1)
	for i, c := range k.cols {
		out[i] = c.values()
	}
	return append(out, k.flushes)
}

func (k *columns) reset() {
	for _, c := range k.cols {
		c.reset()
	}
	k.flushes = k.flushes[:0]
}

// inserter is one INSERT statement kept across flushes: clickhouse-go's batch, prepared
// once, whose Flush sends the rows as a whole INSERT on a connection taken from the pool
// for it (WithReleaseConnection, WithCloseOnFlush) and then empties its columns keeping
// their capacity. A flush so fills memory the last one already had: building each INSERT
// in fresh columns, grown row by row, was most of the sink's CPU while it drained a
// backlog (BENCHMARKS.md).
type inserter struct {
	ctx   context.Context // the batch's: it cancels the acquiring of its connections and the wait for answers
	batch driver.Batch
	cols  []driver.BatchColumn // this insert's, taken once: each Column call allocates
}

// inserters keeps the idle inserters of each destination, up to a bound each, so the
// memory they hold is that of the largest flushes of the writers, and no more.
type inserters struct {
	mu   sync.Mutex
	max  int
	idle map[dest][]*inserter
}

// take returns an idle inserter of query into d made with ctx, or prepares one.
func (s *inserters) take(ctx context.Context, d dest, query string) (*inserter, error) {
	s.mu.Lock()
	free := s.idle[d]
	var in *inserter
	for len(free) > 0 && in == nil {
		in, free = free[len(free)-1], free[:len(free)-1]
		if in.ctx != ctx { // made by another caller: its context may be gone
			in.batch.Close()
			in = nil
		}
	}
	s.idle[d] = free
	s.mu.Unlock()
	if in != nil {
		return in, nil
	}
	batch, err := d.conn.PrepareBatch(ctx, query, driver.WithReleaseConnection(), driver.WithCloseOnFlush())
	if err != nil {
		return nil, err
	}
	return &inserter{ctx: ctx, batch: batch}, nil
}

// give puts back an inserter whose last flush succeeded.
func (s *inserters) give(d dest, in *inserter) {
	s.mu.Lock()
	if len(s.idle[d]) < s.max {
		s.idle[d] = append(s.idle[d], in)
		in = nil
	}
	s.mu.Unlock()
	if in != nil {
		in.batch.Close()
	}
}

// close drops every idle inserter.
func (s *inserters) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for d, free := range s.idle {
		for _, in := range free {
			in.batch.Close()
		}
		delete(s.idle, d)
	}
}

// stringRun is how many rows of the String columns insert copies into the driver's
// columns at a time, column after column: the strings lie in the request bodies, a
// row's values side by side, and copying a run of rows of every column while their
// bodies are in the cache reads each body from memory once rather than once a column.
const stringRun = 512

// insert sends cols, the values of query's columns in order (slices, or *runs), to d as
// one INSERT. A
// failed inserter is not reused: its state after an error is the driver's to know.
func (c *ClickHouse) insert(ctx context.Context, d dest, query string, cols []any) error {
	q := fmt.Sprintf(query, d.table)
	in, err := c.inserters.take(ctx, d, q)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	n := 0
	if len(cols) > 0 {
		if r, ok := cols[0].(*runs); ok {
			n = len(r.v)
		} else {
			n = reflect.ValueOf(cols[0]).Len()
		}
	}
	in.cols = in.cols[:0]
	for i := range cols {
		in.cols = append(in.cols, in.batch.Column(i))
	}
	for k, from := 0, 0; from == 0 || from < n; k, from = k+1, from+stringRun {
		for i, col := range cols {
			switch v := col.(type) {
			case *runs:
				col = v.run(k)
			case []string:
				col = v[min(from, len(v)):min(from+stringRun, len(v))]
			default:
				if from > 0 {
					continue
				}
			}
			if err := in.cols[i].Append(col); err != nil {
				in.batch.Close()
				return fmt.Errorf("append column %d: %w", i, err)
			}
		}
	}
	if err := in.batch.Flush(); err != nil {
		in.batch.Close()
		return fmt.Errorf("send: %w", err)
	}
	c.inserters.give(d, in)
	return nil
}

// WorkingMemory is about the most the sink holds while it writes flushes holding
// inFlight bytes of signals as the buffer charges them: each row's values in rung's
// columns and in clickhouse-go's, the block encoded for the wire, the rows' order and
// the counted keys of signals counted again, kept for reuse by the next flushes; four
// times their charge, for pageviews of a few hundred bytes (BENCHMARKS.md, "Memory:
// what rung serve holds", measured when every signal had a counted key: an upper bound).
func (c *ClickHouse) WorkingMemory(inFlight int64) int64 { return 4 * inFlight }
