// Package buffer owns the in-memory buffer between the collector and the sink: it holds
// copies of accepted signals in per-shard queues of fixed-size chunks, sharded by a hash
// of anonymous_id so one visitor's signals stay in order, bounded in bytes over all
// shards together, and hands them to a flush function in batches when a batch is full
// or its oldest signal is old enough (a batch.Policy). It decides what happens when it
// is full (reject or drop) and counts every signal it did not deliver, by reason. A
// signal may carry a tag (AppendTagged) that Config.Done hands back once its batch is
// delivered: the write-ahead log (package wal) learns so which segments it may delete.
//
// Memory: a held signal is charged against Config.MaxBytes for its slot and the copy of
// its strings, and a chunk, once closed, for the room it left unused; the charge is
// released when the batch has been delivered. Nothing the buffer holds points into
// memory it did not allocate, so it never keeps a request body alive. Beyond MaxBytes,
// it holds what Overhead says.
//
// Concurrency: Push is called from many goroutines and takes one shard's lock, one
// compare-and-swap for the bound (one per Append, whatever its signals), and, once a
// chunk fills (every 128 signals or 32 KiB of strings), the chunk pool's lock. Each
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
	"unsafe"

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
	BatchSize     int           // signals a flusher's shards hold that make its flush due (a flush takes up to MaxBatch); default 20000
	FlushInterval time.Duration // the oldest signal waits at most this long; default 1s
	MaxBytes      int64         // memory bound for held and in-flight signals, over all shards; default 128 MiB
	WhenFull      Policy
	Shards        int // default 64
	Flushers      int // concurrent flushes; default 4
	// MaxBatch is the most signals one flush takes when more are waiting than
	// BatchSize: a backlog drains in fewer, larger writes, which a columnar store takes
	// much faster than many small ones. Default 100,000 (BatchSize when larger): larger
	// flushes of a big backlog cost the sink more in growing its columns than the
	// server saves in fewer inserts (BENCHMARKS.md). A flush also stops
	// taking once it holds MaxBytes / (2 × Flushers) bytes of signals, so the flushes
	// together hold at most half of what is charged and the other half stays open to
	// requests while they are written.
	MaxBatch int
	// FullWait is how long a body the buffer has no room for waits for a flush to make
	// room (in Admits, and in Append once decoded) before it is refused; 0 refuses at
	// once. A client that sends again as soon as it is refused (a closed loop, a retry
	// without backoff) is paced so by the store's pace, and the CPU that answering its
	// refusals would take is left to the flush. What the waiting bodies hold is bounded
	// (waitBytes) and in Overhead.
	FullWait time.Duration
	// Done, when set, is called by a flusher after each batch with the tags its signals
	// were pushed with (see AppendTagged), once the sink holds them or they are counted
	// as dropped for a sink error. Signals abandoned at a hard stop are not reported.
	// The slice is reused after it returns.
	Done func(tags []uint32)
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 20000
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 100_000
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
// cannot retry), and then the batch is counted as dropped. The batch slice, and the
// memory its signals' strings lie in, are reused after it returns: the function must not
// keep either (strings.Clone what it keeps).
type FlushFunc func(ctx context.Context, batch []schemas.Signal) error

// Buffer is the bounded, sharded signal buffer. Create it with New and start it with Run.
type Buffer struct {
	cfg      Config
	policy   batch.Policy // from cfg: BatchSize and FlushInterval
	flush    FlushFunc
	shards   []shard
	flushers []*flusher
	pool     chunks // shared by the shards' queues

	closing chan struct{} // closed by Close: Push refuses, flushers drain
	closed  atomic.Bool
	lost    atomic.Int64 // signals abandoned at a hard stop, counted as dropped once
	_       [64]byte     // keep used, written by every push, off the lines read with it
	used    atomic.Int64 // bytes charged for what is held and in flight (see the package doc)
	_       [64]byte

	// room is closed when a flush has released its charge, waking the bodies waiting
	// for room; the first waiter after that makes the next. waiting is the bytes of the
	// bodies waiting, and timers their reusable timers.
	roomMu  sync.Mutex
	room    chan struct{}
	waiting atomic.Int64
	timers  sync.Pool

	droppedFull   *metrics.Counter
	rejectedFull  *metrics.Counter
	droppedSink   *metrics.Counter
	droppedStop   *metrics.Counter
	flushes       *metrics.Counter
	flushRows     *metrics.PrometheusHistogram
	flushSeconds  *metrics.PrometheusHistogram
	flushFailures *metrics.Counter
}

// shard is one lock's worth of the buffer. Push shares nothing else between shards but
// the byte bound and, once a chunk in 128 signals, the chunk pool, so pushes to
// different shards seldom contend; counters are summed when scraped.
type shard struct {
	mu     sync.Mutex
	q      queue
	since  int64 // when the oldest held signal arrived, Unix ns
	pushed uint64
	poke   int // n at which the flusher is woken
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
	set.NewGauge(`rung_buffer_bytes`, func() float64 { return float64(b.used.Load()) })
	set.NewGauge(`rung_buffer_max_bytes`, func() float64 { return float64(cfg.MaxBytes) })
	// Pushes are counted per shard under its lock, and summed into a counter when scraped.
	set.RegisterMetricsWriter(func(w io.Writer) {
		metrics.WriteCounterUint64(w, `rung_buffer_pushed_total`, b.pushed())
	})
	b.flushers = make([]*flusher, cfg.Flushers)
	for i := range b.flushers {
		b.flushers[i] = &flusher{b: b, wake: make(chan struct{}, 1)}
	}
	perFlusher := (cfg.Shards + cfg.Flushers - 1) / cfg.Flushers
	for i := range b.shards {
		s := &b.shards[i]
		s.q.pool = &b.pool
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

// Overhead is the most memory a Buffer of cfg holds beyond what it charges against
// cfg.MaxBytes: the unused room of one partly filled chunk at each end of each shard's
// queue, and each flusher's batch (maxTake signals at most; their strings lie in the
// chunks). Chunks are kept for reuse once their batch is delivered, so the chunks in use
// and kept together never take more than MaxBytes and this.
func Overhead(cfg Config) int64 {
	cfg.defaults()
	return int64(cfg.Shards)*2*chunkBytes + int64(cfg.Flushers)*maxTake(&cfg)*int64(unsafe.Sizeof(schemas.Signal{})) +
		waitBytes(&cfg)
}

// waitBytes is the most bytes of bodies (or their decoded signals) that wait for room
// at once: beyond it, a body is refused without waiting.
func waitBytes(cfg *Config) int64 {
	if cfg.FullWait <= 0 || cfg.WhenFull == Drop {
		return 0
	}
	return cfg.MaxBytes / 16
}

// InFlight is the most bytes of held signals, as charged, that the flushes of a Buffer
// of cfg deliver at once: what a sink's working memory is in proportion to.
func InFlight(cfg Config) int64 {
	cfg.defaults()
	return int64(cfg.Flushers) * flushBudget(&cfg)
}

// flushBudget is the charge at which a flush stops taking signals: a fraction of the
// bound, so a backlog drains in large writes (a columnar store spends per INSERT what
// many rows cost) while half the buffer stays open to requests.
func flushBudget(cfg *Config) int64 { return max(cfg.MaxBytes/int64(2*cfg.Flushers), 1) }

// maxTake is the most signals one flush takes: MaxBatch, or what its budget holds of
// the smallest signals, plus the rest of the chunk at which it was reached.
func maxTake(cfg *Config) int64 {
	return min(int64(cfg.MaxBatch), flushBudget(cfg)/slotBytes+chunkLen)
}

// Append pushes the signals, with Push's answer in errs[i]: the buffer is the collector's
// intake on one node. They are taken together or, when the buffer has not room for all
// of them, refused (or dropped) together. It copies what it keeps, and never blocks on
// the flush longer than Config.FullWait.
func (b *Buffer) Append(_ context.Context, signals []*schemas.Signal, errs []error) {
	b.AppendTagged(signals, errs, 0)
}

// AppendTagged is Append with a tag on every signal, given back to Config.Done when the
// signal has been delivered: the write-ahead log's segment, which it may then delete.
func (b *Buffer) AppendTagged(signals []*schemas.Signal, errs []error, tag uint32) {
	var size int64
	for _, s := range signals {
		size += charge(s)
	}
	if err := b.reserve(size, len(signals)); err != nil {
		for i := range signals {
			errs[i] = err
		}
		return
	}
	for i, s := range signals {
		errs[i] = b.push(s, tag)
	}
}

// Push stores a copy of s. It never blocks on the flush longer than Config.FullWait: a
// full buffer then answers with ErrFull or ErrDropped, by policy.
func (b *Buffer) Push(s *schemas.Signal) error {
	if err := b.reserve(charge(s), 1); err != nil {
		return err
	}
	return b.push(s, 0)
}

// Admits reports whether a request body of n bytes may be decoded: whether the buffer
// has n bytes of room left, or takes whatever comes (policy drop). A body stands in for
// what its signals will be charged (t.js's are charged about their body's length; a
// padded one less), so a body the buffer does not admit can be refused whole, before
// any work is spent on it.
//
// With Config.FullWait, a body the buffer has no room for waits up to that long for a
// flush to make room before it is refused.
func (b *Buffer) Admits(n int) bool {
	if b.cfg.WhenFull == Drop || b.roomFor(int64(n)) {
		return true
	}
	return b.waitRoom(int64(n), func() bool { return b.roomFor(int64(n)) })
}

func (b *Buffer) roomFor(n int64) bool { return b.used.Load()+n <= b.cfg.MaxBytes }

// waitRoom calls try, which says whether there is room for what waits (n bytes), each
// time a flush releases its charge, until it says yes or Config.FullWait has passed.
// It says no at once without FullWait, or when waitBytes of bodies wait already.
func (b *Buffer) waitRoom(n int64, try func() bool) bool {
	if b.cfg.FullWait <= 0 || b.cfg.WhenFull == Drop {
		return false
	}
	if b.waiting.Add(n) > waitBytes(&b.cfg) {
		b.waiting.Add(-n)
		return false
	}
	defer b.waiting.Add(-n)
	t, _ := b.timers.Get().(*time.Timer)
	if t == nil {
		t = time.NewTimer(b.cfg.FullWait)
	} else {
		t.Reset(b.cfg.FullWait)
	}
	defer func() { t.Stop(); b.timers.Put(t) }()
	for {
		b.roomMu.Lock()
		if b.room == nil {
			b.room = make(chan struct{})
		}
		room := b.room
		b.roomMu.Unlock()
		// Tried after taking the channel, so a release in between is not missed.
		if try() {
			return true
		}
		select {
		case <-room:
		case <-t.C:
			return false
		case <-b.closing:
			return false
		}
	}
}

// released wakes the bodies waiting for room.
func (b *Buffer) released() {
	b.roomMu.Lock()
	if b.room != nil {
		close(b.room)
		b.room = nil
	}
	b.roomMu.Unlock()
}

// reserve charges size bytes for n signals, or answers why not (counted). With
// Config.FullWait it waits that long for a flush to make room before it says no: the
// signals, decoded already, are taken if room comes, not decoded again by a retry.
func (b *Buffer) reserve(size int64, n int) error {
	if b.take(size) || b.waitRoom(size, func() bool { return b.take(size) }) {
		return nil
	}
	if b.cfg.WhenFull == Drop {
		b.droppedFull.Add(n)
		return ErrDropped
	}
	b.rejectedFull.Add(n)
	return ErrFull
}

// take charges size bytes if there is room for them.
func (b *Buffer) take(size int64) bool {
	for {
		used := b.used.Load()
		if used+size > b.cfg.MaxBytes {
			return false
		}
		if b.used.CompareAndSwap(used, used+size) {
			return true
		}
	}
}

// push stores a copy of s, whose charge has been reserved.
func (b *Buffer) push(s *schemas.Signal, tag uint32) error {
	sh := &b.shards[ShardOf(s.AnonymousID, len(b.shards))]
	sh.mu.Lock()
	if b.closed.Load() {
		sh.mu.Unlock()
		b.used.Add(-charge(s))
		return ErrClosed
	}
	if sh.q.len() == 0 {
		sh.since = time.Now().UnixNano()
	}
	closed := sh.q.push(s, tag)
	sh.pushed++
	wake := sh.q.len() == sh.poke
	sh.mu.Unlock()
	if closed > 0 {
		b.used.Add(closed)
	}
	if wake {
		sh.f.poke()
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

// pushed returns the signals ever pushed, over all shards.
func (b *Buffer) pushed() uint64 {
	var n uint64
	for i := range b.shards {
		s := &b.shards[i]
		s.mu.Lock()
		n += s.pushed
		s.mu.Unlock()
	}
	return n
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
	t        taking // the batch in progress
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
// MaxBatch signals and about MaxBytes / (2 × Flushers) bytes of them.
func (f *flusher) flushOnce(ctx context.Context) {
	limit, budget := f.b.cfg.MaxBatch, flushBudget(&f.b.cfg)
	t := &f.t
	t.batch, t.tags, t.done, t.charged = t.batch[:0], t.tags[:0], t.done[:0], 0
	for _, s := range f.shards {
		if len(t.batch) >= limit || t.charged >= budget {
			break
		}
		s.mu.Lock()
		s.q.take(t, limit-len(t.batch), budget)
		// since stays: what is left is no older than it, so due stays honest
		s.mu.Unlock()
	}
	n := len(t.batch)
	if n == 0 {
		return
	}
	f.inflight.Store(int64(n))
	start := time.Now()
	err := f.b.flush(ctx, t.batch)
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
		f.b.cfg.Done(t.tags)
	}
	// The batch's strings lie in the chunks, which may be reused only now; cleared, the
	// batch keeps no chunk the pool lets go of, nor a big string, alive past its charge.
	clear(t.batch)
	for _, c := range t.done {
		c.reset()
	}
	f.b.pool.put(t.done)
	f.b.used.Add(-t.charged)
	f.inflight.Store(0)
	f.b.released()
}
