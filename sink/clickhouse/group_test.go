package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/sink"
)

func rowBatch(i int) *sink.Batch {
	return &sink.Batch{Landing: []sink.LandingCell{{LandingKey: sink.LandingKey{Site: fmt.Sprint(i)}, Version: 1}}}
}

// Flushes that submit while a write is under way share the next one; every flush gets
// its write's result, and none returns before its rows are written.
func TestGroupCommitMerges(t *testing.T) {
	release := make(chan struct{})
	var (
		mu     sync.Mutex
		writes []int
	)
	g := newGroup(time.Hour, func(ctx context.Context, b *sink.Batch, _ []flushed) error {
		mu.Lock()
		first := len(writes) == 0
		writes = append(writes, len(b.Landing))
		mu.Unlock()
		if first {
			<-release // hold the first write until the others queue behind it
		}
		return nil
	}, metrics.NewSet())
	const n = 8
	g.begin()
	errs := make(chan error, n)
	go func() { errs <- g.commit(context.Background(), flushed{b: rowBatch(0)}) }()
	harness.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(writes) != 1 {
			return errors.New("the first write has not started")
		}
		return nil
	})
	for i := 1; i < n; i++ {
		g.begin()
		go func() { errs <- g.commit(context.Background(), flushed{b: rowBatch(i)}) }()
	}
	harness.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.pending) != n-1 {
			return fmt.Errorf("%d flushes queued, want %d", len(g.pending), n-1)
		}
		return nil
	})
	close(release)
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(writes) != "[1 7]" {
		t.Errorf("writes of %v rows, want [1 7]: the queued flushes in one", writes)
	}
	if got := g.flushes.Get(); got != n || g.groups.Get() != 2 {
		t.Errorf("counted %d flushes in %d groups", got, g.groups.Get())
	}
	if g.writing || len(g.pending) != 0 || g.inflight != 0 {
		t.Errorf("left writing=%v pending=%d inflight=%d", g.writing, len(g.pending), g.inflight)
	}
}

// A leader waits for flushes still inserting their raw signals, and not for one that
// gave up; a failed write fails every flush in it.
func TestGroupCommitWaitsAndFails(t *testing.T) {
	boom := errors.New("boom")
	var sizes []int
	g := newGroup(time.Hour, func(ctx context.Context, b *sink.Batch, _ []flushed) error {
		sizes = append(sizes, len(b.Landing))
		return boom
	}, metrics.NewSet())
	g.begin() // the leader
	g.begin() // one still inserting raw signals: will submit
	g.begin() // one that will give up
	errs := make(chan error, 2)
	go func() { errs <- g.commit(context.Background(), flushed{b: rowBatch(0)}) }()
	harness.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
		g.mu.Lock()
		defer g.mu.Unlock()
		if !g.writing {
			return errors.New("no leader yet")
		}
		return nil
	})
	go func() { errs <- g.commit(context.Background(), flushed{b: rowBatch(1)}) }()
	g.abandon()
	for i := 0; i < 2; i++ {
		if err := <-errs; !errors.Is(err, boom) {
			t.Errorf("commit: %v, want the write's error", err)
		}
	}
	if fmt.Sprint(sizes) != "[2]" {
		t.Errorf("writes of %v rows, want one of both flushes", sizes)
	}
	// With nobody else under way, a flush writes at once.
	g.begin()
	if err := g.commit(context.Background(), flushed{b: rowBatch(2)}); !errors.Is(err, boom) {
		t.Errorf("commit alone: %v", err)
	}
}
