package level

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Handler reacts to one event. Handlers may be called concurrently by Async.
type Handler[E any] func(ctx context.Context, e E) error

// Sync calls its handlers in order, in the caller's goroutine: the event is handled
// before Emit returns, inside the request.
type Sync[E any] struct {
	handlers []Handler[E]
}

// NewSync returns a dispatcher over hs.
func NewSync[E any](hs ...Handler[E]) *Sync[E] {
	return &Sync[E]{handlers: hs}
}

// Emit calls every handler, even after one fails, and returns their errors joined.
func (s *Sync[E]) Emit(ctx context.Context, e E) error {
	var errs []error
	for i, h := range s.handlers {
		if err := h(ctx, e); err != nil {
			errs = append(errs, fmt.Errorf("handler %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// AsyncConfig sizes an Async dispatcher.
type AsyncConfig struct {
	Capacity int // events the queue holds; Emit rejects beyond it
	Workers  int // goroutines draining the queue; 1 when zero
}

// Stats counts what happened to every emitted event. Once the dispatcher has stopped,
// Enqueued = Handled + Failed + Lost.
type Stats struct {
	Enqueued int64 // accepted by Emit
	Rejected int64 // refused by Emit because the queue was full (never enqueued)
	Handled  int64 // every handler returned nil
	Failed   int64 // a handler returned an error (not retried)
	Lost     int64 // still queued, or interrupted, when the dispatcher was stopped
	Queued   int   // waiting now
}

// Async queues events in memory and handles them on worker goroutines. The workers are
// started by NewAsync and exit when Shutdown or Kill returns; one of the two must be
// called. Emit never blocks.
type Async[E any] struct {
	handlers []Handler[E]

	mu     sync.Mutex
	queue  []E // ring buffer of fixed capacity
	head   int
	n      int
	closed bool // Lock should be held.

	notify  chan struct{} // 1-slot: something was queued
	closing chan struct{} // closed when intake stops: drain, then exit
	hard    context.Context
	kill    context.CancelFunc // interrupts handlers and stops workers at once
	wg      sync.WaitGroup

	enqueued, rejected, handled, failed, lost atomic.Int64
}

// NewAsync starts cfg.Workers goroutines that call hs for every queued event.
func NewAsync[E any](cfg AsyncConfig, hs ...Handler[E]) (*Async[E], error) {
	if cfg.Capacity < 1 {
		return nil, fmt.Errorf("async dispatcher: capacity %d (want at least 1)", cfg.Capacity)
	}
	if cfg.Workers < 0 {
		return nil, fmt.Errorf("async dispatcher: %d workers", cfg.Workers)
	}
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	a := &Async[E]{
		handlers: hs,
		queue:    make([]E, cfg.Capacity),
		notify:   make(chan struct{}, 1),
		closing:  make(chan struct{}),
	}
	a.hard, a.kill = context.WithCancel(context.Background())
	for range cfg.Workers {
		a.wg.Add(1)
		go a.work()
	}
	return a, nil
}

// Emit queues e, or returns ErrFull (counted as rejected) or ErrClosed.
func (a *Async[E]) Emit(e E) error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	if a.n == len(a.queue) {
		a.mu.Unlock()
		a.rejected.Add(1)
		return ErrFull
	}
	a.queue[(a.head+a.n)%len(a.queue)] = e
	a.n++
	a.mu.Unlock()
	a.enqueued.Add(1)
	a.wake()
	return nil
}

func (a *Async[E]) wake() {
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

func (a *Async[E]) pop() (E, bool, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var zero E
	if a.n == 0 {
		return zero, false, 0
	}
	e := a.queue[a.head]
	a.queue[a.head] = zero
	a.head = (a.head + 1) % len(a.queue)
	a.n--
	return e, true, a.n
}

// work exits when the queue is empty after intake stopped (Shutdown), or as soon as the
// hard context is cancelled (Kill, or Shutdown past its deadline).
func (a *Async[E]) work() {
	defer a.wg.Done()
	for {
		if a.hard.Err() != nil {
			return
		}
		e, ok, left := a.pop()
		if !ok {
			select {
			case <-a.notify:
			case <-a.closing:
				if a.depth() == 0 {
					return
				}
			case <-a.hard.Done():
				return
			}
			continue
		}
		if left > 0 {
			a.wake() // let another worker take the next one
		}
		a.handle(e)
	}
}

func (a *Async[E]) handle(e E) {
	var failed bool
	for _, h := range a.handlers {
		if err := h(a.hard, e); err != nil {
			failed = true
		}
	}
	switch {
	case failed && a.hard.Err() != nil:
		a.lost.Add(1) // interrupted by the stop: the crash took it
	case failed:
		a.failed.Add(1)
	default:
		a.handled.Add(1)
	}
}

func (a *Async[E]) depth() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func (a *Async[E]) stopIntake() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.closed {
		a.closed = true
		close(a.closing)
	}
}

// Shutdown stops in two phases: intake stops and the workers drain the queue until it
// is empty or ctx is done; then handlers still running are interrupted (their ctx is
// cancelled) and whatever is left is counted as lost. It returns the final Stats.
func (a *Async[E]) Shutdown(ctx context.Context) Stats {
	a.stopIntake()
	drained := make(chan struct{})
	go func() { // exits when the workers have; they do at the latest after kill below
		a.wg.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		a.kill()
		<-drained
	}
	return a.finish()
}

// Kill is a crash: intake stops, running handlers are interrupted, and nothing queued
// is handled. It counts what it lost and returns the final Stats. In a real crash the
// counters die with the process too — which is why this level loses events silently.
func (a *Async[E]) Kill() Stats {
	a.stopIntake()
	a.kill()
	a.wg.Wait()
	return a.finish()
}

func (a *Async[E]) finish() Stats {
	a.kill()
	a.mu.Lock()
	left := a.n
	var zero E
	for a.n > 0 {
		a.queue[a.head] = zero
		a.head = (a.head + 1) % len(a.queue)
		a.n--
	}
	a.mu.Unlock()
	a.lost.Add(int64(left))
	return a.Stats()
}

// Stats returns the counters now.
func (a *Async[E]) Stats() Stats {
	return Stats{
		Enqueued: a.enqueued.Load(),
		Rejected: a.rejected.Load(),
		Handled:  a.handled.Load(),
		Failed:   a.failed.Load(),
		Lost:     a.lost.Load(),
		Queued:   a.depth(),
	}
}
