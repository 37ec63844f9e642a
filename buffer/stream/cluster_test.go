package stream

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer/stream/streamtest"
	"github.com/rungdev/rung/internal/harness"
)

// TestClusterNodeKilled publishes without pause into a 3-replica stream, consumed all
// along, while the stream's leader is SIGKILLed, and checks that publishing carries on
// (the Publisher retries through the leader election) and that every signal the
// publisher acked is consumed. Order per visitor is not checked here: a publish retried
// after a lost ack may land behind later signals of the same visitor.
func TestClusterNodeKilled(t *testing.T) {
	urls, kill := streamtest.StartCluster(t, 3)
	nc, js := connect(t, urls...)
	scfg := newStream(t, js, StreamConfig{Partitions: 8, Replicas: 3})

	info, err := js.Stream(context.Background(), scfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	leader := info.CachedInfo().Cluster.Leader
	var victim int
	if _, err := fmt.Sscanf(leader, "rung-n%d", &victim); err != nil {
		t.Fatalf("stream leader %q: %v", leader, err)
	}

	set := metrics.NewSet()
	// The election that follows the kill takes seconds on an idle machine and far longer
	// on a loaded one: the publisher is given minutes to see it through, a bound that
	// only a cluster that never recovers reaches.
	p, err := NewPublisher(nc, PublisherConfig{Stream: scfg, AckTimeout: 2 * time.Second, Timeout: 2 * time.Minute, Retries: 20}, set)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	// An aggregator consumes all along, on a connection of its own.
	_, jsC := connect(t, urls...)
	r := newRecorder()
	c, _ := consumerFor(t, jsC, ConsumerConfig{Stream: scfg, Partitions: []int{0, 1, 2, 3, 4, 5, 6, 7},
		BatchSize: 1000, FlushInterval: 50 * time.Millisecond}, r)
	stopC := run(t, c)

	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		failed  = map[string]error{}
		killed  atomic.Bool
		afterOK atomic.Int64 // signals acked after the kill
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for g := range 4 {
		wg.Go(func() {
			errs := make([]error, 20)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ss := signals(fmt.Sprintf("cl%d-%d", g, n), 20, 20)
				for _, s := range ss {
					s.AnonymousID = fmt.Sprintf("g%d-%s", g, s.AnonymousID)
				}
				after := killed.Load()
				p.Append(context.Background(), ss, errs)
				mu.Lock()
				for i, err := range errs {
					if err == nil {
						acked[ss[i].EventID] = true
						if after {
							afterOK.Add(1)
						}
					} else {
						failed[ss[i].EventID] = err
					}
				}
				mu.Unlock()
			}
		})
	}
	harness.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 2000 {
			return fmt.Errorf("%d signals acked before the kill", len(acked))
		}
		return nil
	})
	kill(victim)
	killed.Store(true)
	harness.CheckFor(t, 3*time.Minute, 50*time.Millisecond, func() error {
		if n := afterOK.Load(); n < 2000 {
			return fmt.Errorf("%d signals acked since stream leader %s was killed", n, leader)
		}
		return nil
	})
	close(stop)
	wg.Wait()

	mu.Lock()
	t.Logf("acked %d signals (%d after the kill), %d failed; stream leader %s killed", len(acked), afterOK.Load(), len(failed), leader)
	var reasons []string
	for id, err := range failed {
		if len(reasons) < 5 {
			reasons = append(reasons, id+": "+err.Error())
		}
	}
	mu.Unlock()
	if len(failed) > 0 {
		t.Errorf("%d publishes failed across the leader's death, for example:\n%s", len(failed), strings.Join(reasons, "\n"))
	}
	t.Logf("publisher retries: %s", metric(set, "rung_stream_publish_retries_total"))

	harness.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		missing := 0
		for id := range acked {
			if r.seen[id] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d acked signals not consumed", missing, len(acked))
		}
		return nil
	})
	if err := stopC(); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range r.seen {
		if !acked[id] && failed[id] == nil {
			t.Errorf("%s consumed but never published", id)
		}
		if n > 1 && !r.redelivered[id] {
			t.Errorf("%s consumed %d times", id, n)
		}
	}
}
