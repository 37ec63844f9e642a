package sink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Class says what waiting does for a failed write; each sink's classify decides it from
// the driver's error, in one place.
type Class uint8

const (
	// Transient: the store answered but cannot take the write now (busy, overloaded, too
	// many parts, memory limit, disk full, an error no classify knows). Retried a few
	// times with backoff, then the batch is dropped.
	Transient Class = iota
	// Unreachable: the store did not answer (connection refused or reset, timeout).
	// Retried until it answers or the write's context ends: meanwhile the buffer fills
	// and the collector answers 503, so nothing it acknowledged is lost to an outage.
	Unreachable
	// Permanent: waiting will not cure it (a column missing or of another type, a
	// conversion the driver refuses, a read-only database, a constraint). Not retried:
	// the batch is dropped at once.
	Permanent
)

func (c Class) String() string {
	switch c {
	case Unreachable:
		return "unreachable"
	case Permanent:
		return "permanent"
	}
	return "transient"
}

// WriteError is a write a sink gave up on: the table it was writing, the class of the
// last error and how many attempts were made.
type WriteError struct {
	Table    string
	Class    Class
	Attempts int
	Err      error
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("%s: %s error after %d attempt(s): %v", e.Table, e.Class, e.Attempts, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

// Retry runs f, the write of one table, until it succeeds or its error's class says to
// stop: a Permanent error at once, a Transient one after MaxAttempts, an Unreachable one
// when ctx ends. The wait between attempts grows exponentially (with jitter) to 2s. Its
// error is a *WriteError.
type Retry struct {
	Classify    func(error) Class
	MaxAttempts int              // of Transient errors; at least 1
	Errors      *metrics.Counter // every failed attempt
	Retries     *metrics.Counter // every attempt after the first
}

// Do runs f for table as the Retry says.
func (r *Retry) Do(ctx context.Context, table string, f func() error) error {
	backoff := 50 * time.Millisecond
	transient := 0
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		r.Errors.Inc()
		class := r.Classify(err)
		giveUp := &WriteError{Table: table, Class: class, Attempts: attempt, Err: err}
		switch class {
		case Permanent:
			return giveUp
		case Transient:
			if transient++; transient >= max(r.MaxAttempts, 1) {
				return giveUp
			}
		}
		if ctx.Err() != nil {
			giveUp.Err = errors.Join(err, ctx.Err())
			return giveUp
		}
		r.Retries.Inc()
		t := time.NewTimer(backoff + rand.N(backoff/2))
		select {
		case <-ctx.Done():
			t.Stop()
			giveUp.Err = errors.Join(err, ctx.Err())
			return giveUp
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// ClassOf returns the class of the *WriteError in err's chain, and whether there is one.
func ClassOf(err error) (Class, bool) {
	var we *WriteError
	if errors.As(err, &we) {
		return we.Class, true
	}
	return 0, false
}
