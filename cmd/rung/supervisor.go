package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// part is one long-running piece of a command (a listener, the buffer's flushers, the
// relay). run works until its ctx is cancelled, which is the supervisor asking it to
// stop, then winds down and returns what went wrong, if anything: a part that lost
// data while stopping says so in its error. A part that returns before it is asked to
// has failed, even with a nil error.
type part struct {
	name string
	run  func(ctx context.Context) error
}

// stage is a set of parts stopped together.
type stage struct {
	name  string
	parts []part
}

// supervisor runs a command's parts and stops them in a written order. Every part starts
// at once; they stop stage by stage, each stage asked only once the one before it has
// returned, so "stop accepting → drain → quarantine → relay → close the sink" holds as
// written. The stop begins when the command's context ends or when any part fails, so
// one part failing stops the rest, and Run returns that failure.
type supervisor struct {
	log      *slog.Logger
	stages   []stage
	stopping atomic.Bool
}

// then adds a stage, stopped after those added before it.
func (s *supervisor) then(name string, parts ...part) {
	s.stages = append(s.stages, stage{name: name, parts: parts})
}

// Stopping reports whether the stop has begun: /readyz says not ready from then on.
func (s *supervisor) Stopping() bool { return s.stopping.Load() }

// Run starts every part and returns once all have returned: the failure that began the
// stop, if one did, joined with every error the parts returned while stopping.
func (s *supervisor) Run(ctx context.Context) error {
	var (
		mu     sync.Mutex
		errs   []error
		failed = make(chan struct{})
		once   sync.Once
	)
	record := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	cancels := make([]context.CancelFunc, len(s.stages))
	waits := make([]sync.WaitGroup, len(s.stages))
	for i, st := range s.stages {
		// A stage's context is not the command's: the command's ending begins the stop,
		// but each stage is asked in its turn.
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cancels[i] = cancel
		for _, p := range st.parts {
			waits[i].Add(1)
			go func() {
				defer waits[i].Done()
				err := p.run(sctx)
				switch {
				case sctx.Err() == nil: // returned before it was asked to stop
					if err == nil {
						err = errors.New("stopped unexpectedly")
					}
					record(fmt.Errorf("%s: %w", p.name, err))
					once.Do(func() { close(failed) })
				case err != nil && !errors.Is(err, context.Canceled):
					record(fmt.Errorf("%s: %w", p.name, err))
				}
			}()
		}
	}
	select {
	case <-ctx.Done():
		s.log.Info("stopping", "cause", context.Cause(ctx))
	case <-failed:
		mu.Lock()
		cause := errs[0]
		mu.Unlock()
		s.log.Error("stopping: a part failed", "err", cause)
	}
	s.stopping.Store(true)
	for i, st := range s.stages {
		s.log.Debug("stopping", "stage", st.name)
		cancels[i]()
		waits[i].Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	return errors.Join(errs...)
}

// closer is a part that only closes something when it is asked to stop: a store, a
// connection, in its place in the stop order.
func closer(name string, close func() error) part {
	return part{name, func(ctx context.Context) error {
		<-ctx.Done()
		return close()
	}}
}

// httpPart serves srv on ln until asked to stop, then shuts it down, giving requests in
// progress up to grace to finish.
func httpPart(name string, srv *http.Server, ln net.Listener, grace time.Duration) part {
	return part{name, func(ctx context.Context) error {
		shut := make(chan error, 1)
		stop := context.AfterFunc(ctx, func() {
			sctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			shut <- srv.Shutdown(sctx)
		})
		err := srv.Serve(ln)
		if stop() { // Serve ended by itself: the listener failed
			srv.Close()
			return fmt.Errorf("serve %s: %w", ln.Addr(), err)
		}
		// Serve returns as soon as Shutdown begins; the requests in progress end later.
		if err := <-shut; err != nil {
			return fmt.Errorf("shut down %s: %w", ln.Addr(), err)
		}
		return nil
	}}
}
