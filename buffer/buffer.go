// Package buffer owns the in-memory buffer between the collector and the sink: it holds
// accepted signals in per-shard queues of fixed-size chunks, bounded in bytes, sharded by
// a hash of anonymous_id so one visitor's signals stay in order, and hands them to a
// flush function in batches when a batch is full or its oldest signal is old enough (a
// batch.Policy). It decides what happens when it is full (reject or drop) and counts
// every signal it did not deliver, by reason. A signal may carry a tag (AppendTagged)
// that Config.Done hands back once its batch is delivered: the write-ahead log (package
// wal) learns so which segments it may delete.
//
// Concurrency: Push is called from many goroutines and takes only one shard's lock. Each
// shard belongs to exactly one flusher goroutine, which is what keeps a visitor's signals
// in order through the flush function; flushers run concurrently with each other and
// with Push. The Buffer owns its flusher goroutines: Run starts them and returns when
// they have drained and exited.
package buffer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cespare/xxhash/v2"

	"github.com/rungdev/rung/buffer/batch"
	"github.com/rungdev/rung/schemas"
)

var (
	// ErrFull: the buffer is full and the policy is to reject; the caller answers 503.
	ErrFull = errors.New("buffer full")
	// ErrDropped: the buffer is full and the policy is to drop; the signal was counted
	// as accepted and dropped, and the caller answers as if it had been stored.
	ErrDropped = errors.New("buffer full: signal dropped")
	// ErrClosed: the buffer is shutting down and takes nothing more.
	ErrClosed = errors.New("buffer closed")
)

// Policy says what a full buffer does with a new signal.
type Policy uint8

const (
	Reject Policy = iota // refuse it: the client retries (503 + Retry-After)
	Drop                 // accept and count it as dropped (202)
)

// ParsePolicy parses "reject" or "drop".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "reject":
		return Reject, nil
	case "drop":
		return Drop, nil
	}
	return 0, fmt.Errorf("when-full policy %q: want reject or drop", s)
}

func (p Policy) String() string {
	if p == Drop {
		return "drop"
	}
	return "reject"
}

// Config sets the buffer's bounds and batching. The zero value of a field takes its
// default.
type Config struct {
	BatchSize     int           // signals per flush; default 5000
	FlushInterval time.Duration // the oldest signal waits at most this long; default 1s
	MaxBytes      int64         // memory bound for held and in-flight signals; default 128 MiB
	WhenFull      Policy
	Shards        int // default 64
	Flushers      int // concurrent flushes; default 4
	// MaxBatch is the most signals one flush takes when more are waiting than
	// BatchSize: a backlog drains in fewer, larger writes, which a columnar store takes
	// much faster than many small ones. Default 20 × BatchSize. A flush also stops
	// taking once it holds MaxBytes / (4 × Flushers) bytes of signals, so what the
	// flushes hold beside the buffer stays a fraction of its bound.
	MaxBatch int
	// Done, when set, is called by a flusher after each batch with the tags its signals
	// were pushed with (see AppendTagged), once the sink holds them or they are counted
	// as dropped for a sink error. Signals abandoned at a hard stop are not reported.
	// The slice is reused after it returns.
	Done func(tags []uint32)
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 5000
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 20 * c.BatchSize
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 128 << 20
	}
	if c.Shards <= 0 {
		c.Shards = 64
	}
	if c.Flushers <= 0 {
		c.Flushers = 4
	}
	if c.Flushers > c.Shards {
		c.Flushers = c.Shards
	}
	c.MaxBatch = max(c.MaxBatch, c.BatchSize)
}

// FlushFunc delivers one batch. It owns the retrying: it returns when the batch is
// stored, or with an error when it gives up (ctx cancelled at hard stop, or an error it
// cannot retry), and then the batch is counted as dropped. The batch slice is reused
// after it returns: the function must not keep it.
type FlushFunc func(ctx context.Context, batch []schemas.Signal) error

// Buffer is the bounded, sharded signal buffer. Create it with New and start it with Run.
type Buffer struct {
	cfg      Config
	policy   batch.Policy // from cfg: BatchSize and FlushInterval
	flush    FlushFunc
	shards   []shard
	flushers []*flusher

	closing chan struct{} // closed by Close: Push refuses, flushers drain
	closed  atomic.Bool
	lost    atomic.Int64 // signals abandoned at a hard stop, counted as dropped once

	droppedFull   *metrics.Counter
	copied        *metrics.Counter // held whole, not as spans of their body
	rejectedFull  *metrics.Counter
	droppedSink   *metrics.Counter
	droppedStop   *metrics.Counter
	flushes       *metrics.Counter
	flushRows     *metrics.PrometheusHistogram
	flushSeconds  *metrics.PrometheusHistogram
	flushFailures *metrics.Counter
}

// shard is one lock's worth of the buffer. Push touches nothing shared between shards,
// so pushes to different shards never contend; counters are summed when scraped.
type shard struct {
	mu     sync.Mutex
	q      queue
	bytes  int64 // of signals held here and taken by an unfinished flush
	since  int64 // when the oldest held signal arrived, Unix ns
	pushed uint64
	max    int64 // byte bound of this shard
	poke   int   // n at which the flusher is woken
	f      *flusher
	_      [64]byte // keep neighbouring shards' locks off one cache line
}

// New makes a Buffer that delivers to flush and registers its metrics in set.
func New(cfg Config, flush FlushFunc, set *metrics.Set) *Buffer {
	cfg.defaults()
	b := &Buffer{
		cfg:     cfg,
		policy:  batch.Policy{Count: cfg.BatchSize, Period: cfg.FlushInterval},
		flush:   flush,
		shards:  make([]shard, cfg.Shards),
		closing: make(chan struct{}),

		droppedFull:   set.NewCounter(`rung_signals_dropped_total{reason="buffer_full"}`),
		copied:        set.NewCounter(`rung_buffer_copied_total`),
		rejectedFull:  set.NewCounter(`rung_signals_rejected_total{reason="buffer_full"}`),
		droppedSink:   set.NewCounter(`rung_signals_dropped_total{reason="sink_error"}`),
		droppedStop:   set.NewCounter(`rung_signals_dropped_total{reason="shutdown"}`),
		flushes:       set.NewCounter(`rung_buffer_flushes_total`),
		flushFailures: set.NewCounter(`rung_buffer_flush_failures_total`),
		flushRows: set.NewPrometheusHistogramExt(`rung_buffer_flush_signals`,
			[]float64{1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000}),
		flushSeconds: set.NewPrometheusHistogramExt(`rung_buffer_flush_seconds`,
			[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}),
	}
	set.NewGauge(`rung_buffer_signals`, func() float64 { return float64(b.Held()) })
	set.NewGauge(`rung_buffer_bytes`, func() float64 { n, _ := b.sum(); return float64(n) })
	set.NewGauge(`rung_buffer_max_bytes`, func() float64 { return float64(cfg.MaxBytes) })
	// Pushes are counted per shard under its lock, and summed into a counter when scraped.
	set.RegisterMetricsWriter(func(w io.Writer) {
		_, pushed := b.sum()
		metrics.WriteCounterUint64(w, `rung_buffer_pushed_total`, pushed)
	})
	b.flushers = make([]*flusher, cfg.Flushers)
	for i := range b.flushers {
		b.flushers[i] = &flusher{b: b, wake: make(chan struct{}, 1)}
	}
	chunks := &sync.Pool{New: func() any { return new(chunk) }}
	per := cfg.MaxBytes / int64(cfg.Shards)
	perFlusher := (cfg.Shards + cfg.Flushers - 1) / cfg.Flushers
	for i := range b.shards {
		s := &b.shards[i]
		s.max = per
		s.q.pool = chunks
		s.poke = max(1, b.policy.Count/perFlusher)
		s.f = b.flushers[i%cfg.Flushers]
		s.f.shards = append(s.f.shards, s)
	}
	return b
}

// ShardOf returns the shard index of an anonymous_id: the same hash partitions the
// sessionizer, the NATS subjects and the ClickHouse shards.
func ShardOf(anonymousID string, shards int) int {
	return int(xxhash.Sum64String(anonymousID) % uint64(shards))
}

// Append pushes each signal, with Push's answer in errs[i]: the buffer is the collector's
// intake on one node. The signals were decoded from body, and their strings that lie in
// it are held as spans of it (see slot). It never blocks.
func (b *Buffer) Append(_ context.Context, body string, signals []*schemas.Signal, errs []error) {
	b.AppendTagged(body, signals, errs, 0)
}

// AppendTagged is Append with a tag on every signal, given back to Config.Done when the
// signal has been delivered: the write-ahead log's segment, which it may then delete.
func (b *Buffer) AppendTagged(body string, signals []*schemas.Signal, errs []error, tag uint32) {
	for i, s := range signals {
		errs[i] = b.push(body, s, tag)
	}
}

// Push stores a copy of s. It never blocks on the flush: a full buffer answers at once
// with ErrFull or ErrDropped, by policy. s's strings must not refer to memory that will
// be reused (the collector copies the request body first). It allocates the copy, under
// the shard's lock: Append, which holds a body's signals as spans of it, is the hot path.
func (b *Buffer) Push(s *schemas.Signal) error {
	return b.push("", s, 0)
}

func (b *Buffer) push(body string, s *schemas.Signal, tag uint32) error {
	sh := &b.shards[ShardOf(s.AnonymousID, len(b.shards))]
	size := int64(s.Size())
	sh.mu.Lock()
	if b.closed.Load() {
		sh.mu.Unlock()
		return ErrClosed
	}
	if sh.bytes+size > sh.max {
		sh.mu.Unlock()
		if b.cfg.WhenFull == Drop {
			b.droppedFull.Inc()
			return ErrDropped
		}
		b.rejectedFull.Inc()
		return ErrFull
	}
	if sh.q.len() == 0 {
		sh.since = time.Now().UnixNano()
	}
	spans := sh.q.push(body, s, tag)
	sh.bytes += size
	sh.pushed++
	wake := sh.q.len() == sh.poke
	sh.mu.Unlock()
	if wake {
		sh.f.poke()
	}
	if !spans && body != "" {
		b.copied.Inc()
	}
	return nil
}

// Held returns the number of signals in the buffer, including those being flushed.
func (b *Buffer) Held() int64 {
	var n int64
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		n += int64(s.q.len())
		s.mu.Unlock()
	}
	for _, f := range b.flushers {
		n += f.inflight.Load()
	}
	return max(n-b.lost.Load(), 0)
}

// Dropped returns how many accepted signals the buffer has dropped so far: those the
// sink gave up on and those still held at a hard stop. Signals refused or dropped when
// the buffer was full are not counted: their clients were told (or the policy says so).
func (b *Buffer) Dropped() uint64 { return b.droppedSink.Get() + b.droppedStop.Get() }

// sum returns the bytes held and the signals ever pushed, over all shards.
func (b *Buffer) sum() (bytes int64, pushed uint64) {
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		bytes += s.bytes
		pushed += s.pushed
		s.mu.Unlock()
	}
	return bytes, pushed
}

// Close stops intake: every Push from now on returns ErrClosed. Run then drains what is
// held and returns. Close is idempotent.
func (b *Buffer) Close() {
	if b.closed.CompareAndSwap(false, true) {
		// Take every shard lock once so no Push that saw closed == false is still
		// writing when the flushers start their final drain.
		for i := range b.shards {
			b.shards[i].mu.Lock()
			//lint:ignore SA2001 the empty critical section is the point: a barrier after every Push in progress
			b.shards[i].mu.Unlock()
		}
		close(b.closing)
	}
}

// Run runs the flushers until Close has been called and everything held has been
// flushed, or until ctx is cancelled (the hard stop), when whatever is still held is
// counted as dropped for reason "shutdown". ctx is also the context of every FlushFunc
// call, so cancelling it aborts the flushes in progress too.
func (b *Buffer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, f := range b.flushers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.run(ctx)
		}()
	}
	wg.Wait()
	if n := b.Held(); n > 0 {
		// Only a hard stop leaves signals behind.
		b.droppedStop.Add(int(n))
		b.lost.Add(n)
	}
	return ctx.Err()
}

// flusher owns a set of shards and flushes them one batch at a time, in order.
type flusher struct {
	b        *Buffer
	shards   []*shard
	inflight atomic.Int64 // signals in the batch being flushed
	wake     chan struct{}
	batch    []schemas.Signal
	tags     []uint32 // the batch's tags
	taken    []int64  // bytes taken from each shard by the batch in progress
}

func (f *flusher) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run exits when the buffer is closed and drained, or when ctx is cancelled.
func (f *flusher) run(ctx context.Context) {
	interval := f.b.policy.Period
	tick := time.NewTicker(interval/4 + rand.N(interval/8+1)) // jitter spreads flushers
	defer tick.Stop()
	f.taken = make([]int64, len(f.shards))
	for {
		closing := false
		select {
		case <-ctx.Done():
			return
		case <-f.b.closing:
			closing = true
		case <-f.wake:
		case <-tick.C:
		}
		for f.due(closing) {
			if ctx.Err() != nil {
				return
			}
			f.flushOnce(ctx)
		}
		if closing {
			return
		}
	}
}

// due says whether a batch should be flushed now: the policy says so of what the
// flusher's shards hold (enough signals, or the oldest is old enough), or the buffer is
// closing and anything is left.
func (f *flusher) due(closing bool) bool {
	now := time.Now().UnixNano()
	held, oldest := 0, now
	for _, s := range f.shards {
		s.mu.Lock()
		if n := s.q.len(); n > 0 {
			held += n
			oldest = min(oldest, s.since)
		}
		s.mu.Unlock()
	}
	return held > 0 && (closing || f.b.policy.Due(held, 0, time.Duration(now-oldest)))
}

// flushOnce takes up to one batch from the flusher's shards and delivers it: up to
// MaxBatch signals and about MaxBytes / (4 × Flushers) bytes of them.
func (f *flusher) flushOnce(ctx context.Context) {
	limit, budget := f.b.cfg.MaxBatch, max(f.b.cfg.MaxBytes/int64(4*f.b.cfg.Flushers), 1)
	var size int64
	f.batch, f.tags = f.batch[:0], f.tags[:0]
	for i, s := range f.shards {
		f.taken[i] = 0
		if len(f.batch) >= limit || size >= budget {
			continue
		}
		s.mu.Lock()
		f.batch, f.tags, f.taken[i] = s.q.take(f.batch, f.tags, limit-len(f.batch), budget-size)
		size += f.taken[i]
		// since stays: what is left is no older than it, so due stays honest
		s.mu.Unlock()
	}
	n := len(f.batch)
	if n == 0 {
		return
	}
	f.inflight.Store(int64(n))
	start := time.Now()
	err := f.b.flush(ctx, f.batch)
	f.b.flushes.Inc()
	f.b.flushRows.Update(float64(n))
	f.b.flushSeconds.UpdateDuration(start)
	stopped := err != nil && ctx.Err() != nil
	if err != nil {
		f.b.flushFailures.Inc()
		if stopped {
			f.b.droppedStop.Add(n)
		} else {
			f.b.droppedSink.Add(n)
		}
	}
	if f.b.cfg.Done != nil && !stopped {
		f.b.cfg.Done(f.tags)
	}
	clear(f.batch)
	for i, s := range f.shards {
		if f.taken[i] == 0 {
			continue
		}
		s.mu.Lock()
		s.bytes -= f.taken[i]
		s.mu.Unlock()
	}
	f.inflight.Store(0)
}
