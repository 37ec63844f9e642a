package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

// recorder is a sink: it keeps what each successful batch held.
type recorder struct {
	mu          sync.Mutex
	seen        map[string]int  // event_id → times stored
	redelivered map[string]bool // event_id → came flagged as a redelivery
	last        map[string]int64
	outOfOrder  []string
	fail        func(call int, signals []schemas.Signal) error // nil: store everything
	calls       int
}

func newRecorder() *recorder {
	return &recorder{seen: map[string]int{}, redelivered: map[string]bool{}, last: map[string]int64{}}
}

func (r *recorder) handle(_ context.Context, ss []schemas.Signal, re []bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.fail != nil {
		if err := r.fail(r.calls, ss); err != nil {
			return err
		}
	}
	for i, s := range ss {
		r.seen[s.EventID]++
		if re[i] {
			r.redelivered[s.EventID] = true
		}
		// ReceivedAt counts up per visitor in publish order.
		if last, ok := r.last[s.AnonymousID]; ok && s.ReceivedAt <= last && !re[i] {
			r.outOfOrder = append(r.outOfOrder, s.EventID)
		}
		r.last[s.AnonymousID] = s.ReceivedAt
	}
	return nil
}

// consumedAll waits until r holds as many signals as all, stops the consumers, and
// checks r holds exactly all, each once.
func (r *recorder) consumedAll(t *testing.T, all []*schemas.Signal, stops ...func() error) {
	t.Helper()
	harness.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := r.count(); n < len(all) {
			return fmt.Errorf("%d of %d signals consumed", n, len(all))
		}
		return nil
	})
	var errs []error
	for _, stop := range stops {
		errs = append(errs, stop())
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if err := r.check(all); err != nil {
		t.Error(err)
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// check says whether r stored exactly the signals of want, each once.
func (r *recorder) check(want []*schemas.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.outOfOrder) > 0 {
		return fmt.Errorf("%d signals out of their visitor's order, first %s", len(r.outOfOrder), r.outOfOrder[0])
	}
	ids := map[string]bool{}
	for _, s := range want {
		ids[s.EventID] = true
		switch n := r.seen[s.EventID]; n {
		case 1:
		case 0:
			return fmt.Errorf("%s never stored", s.EventID)
		default:
			return fmt.Errorf("%s stored %d times", s.EventID, n)
		}
	}
	for id := range r.seen {
		if !ids[id] {
			return fmt.Errorf("%s stored but never published", id)
		}
	}
	return nil
}

// run starts c and returns a stop that cancels it and waits for Run's result.
func run(t *testing.T, c *Consumer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		err := c.Run(ctx)
		if err != nil {
			t.Errorf("Consumer.Run: %v", err)
		}
		done <- err
	}()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			err = <-done
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func consumerFor(t *testing.T, js jetstream.JetStream, cfg ConsumerConfig, r *recorder) (*Consumer, *metrics.Set) {
	t.Helper()
	set := metrics.NewSet()
	c, err := NewConsumer(js, cfg, r.handle, set)
	if err != nil {
		t.Fatal(err)
	}
	return c, set
}

// pending returns the messages of partition p's durable not yet acked or not yet delivered.
func pending(js jetstream.JetStream, cfg ConsumerConfig, p int) (int, error) {
	c, err := js.Consumer(context.Background(), cfg.Stream.Name, cfg.DurableName(p))
	if err != nil {
		return 0, err
	}
	info, err := c.Info(context.Background())
	if err != nil {
		return 0, err
	}
	return info.NumAckPending + int(info.NumPending), nil
}

func TestPublishConsume(t *testing.T) {
	nc, js := connect(t)
	scfg := newStream(t, js, StreamConfig{Partitions: 8})
	p := publisher(t, nc, scfg)

	// Four concurrent publishers, each with visitors of its own, so each visitor's
	// signals have one publish order to keep.
	var all []*schemas.Signal
	var wg sync.WaitGroup
	for g := range 4 {
		ss := signals(fmt.Sprintf("pc%d", g), 500, 20)
		for _, s := range ss {
			s.AnonymousID = fmt.Sprintf("g%d-%s", g, s.AnonymousID)
		}
		all = append(all, ss...)
		wg.Go(func() { publish(t, p, ss, 50) })
	}
	wg.Wait()

	// Two consumers split the partitions between them.
	r := newRecorder()
	cfgA := ConsumerConfig{Stream: scfg, Partitions: []int{0, 1, 2, 3}, BatchSize: 300, FlushInterval: 50 * time.Millisecond}
	cfgB := cfgA
	cfgB.Partitions = []int{4, 5, 6, 7}
	a, setA := consumerFor(t, js, cfgA, r)
	b, setB := consumerFor(t, js, cfgB, r)
	stopA, stopB := run(t, a), run(t, b)
	r.consumedAll(t, all, stopA, stopB)
	var na, nb int
	fmt.Sscan(metric(setA, "rung_stream_consumed_total"), &na)
	fmt.Sscan(metric(setB, "rung_stream_consumed_total"), &nb)
	if na == 0 || nb == 0 || na+nb != len(all) {
		t.Errorf("consumed counted %d + %d, want both non-zero, summing to %d", na, nb, len(all))
	}
	// Every message was acked: nothing waits in any durable.
	for part := range 8 {
		cfg := cfgA
		if part >= 4 {
			cfg = cfgB
		}
		harness.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
			n, err := pending(js, cfg, part)
			if err == nil && n != 0 {
				err = fmt.Errorf("partition %d: %d messages not acked", part, n)
			}
			return err
		})
	}
}

func TestHandlerFailureRedelivers(t *testing.T) {
	nc, js := connect(t)
	scfg := newStream(t, js, StreamConfig{Partitions: 4})
	p := publisher(t, nc, scfg)
	all := signals("fail", 400, 40)
	publish(t, p, all, 100)

	r := newRecorder()
	var failed []string
	r.fail = func(call int, ss []schemas.Signal) error {
		if call > 1 {
			return nil
		}
		for _, s := range ss {
			failed = append(failed, s.EventID)
		}
		return errors.New("sink down")
	}
	c, set := consumerFor(t, js, ConsumerConfig{Stream: scfg, Partitions: []int{0, 1, 2, 3}, BatchSize: 100,
		FlushInterval: 20 * time.Millisecond, NakDelay: 100 * time.Millisecond}, r)
	stop := run(t, c)
	r.consumedAll(t, all, stop)
	if len(failed) == 0 {
		t.Fatal("the handler never failed")
	}
	for _, id := range failed {
		if !r.redelivered[id] {
			t.Errorf("%s came back after a failed batch without the redelivered flag", id)
		}
	}
	if got := metric(set, "rung_stream_batch_failures_total"); got != "1" {
		t.Errorf("batch failures counted %s, want 1", got)
	}
}

func TestConsumerReplaced(t *testing.T) {
	nc, js := connect(t)
	scfg := newStream(t, js, StreamConfig{Partitions: 4})
	p := publisher(t, nc, scfg)
	all := signals("replaced", 500, 50)
	publish(t, p, all, 100)

	cfg := ConsumerConfig{Stream: scfg, Partitions: []int{0, 1, 2, 3}, Durable: "worker", BatchSize: 100000,
		FlushInterval: 100 * time.Millisecond, AckWait: 2 * time.Second}

	// The first worker takes a batch and dies holding it: its connection goes, nothing
	// is acked or naked.
	ncA, jsA := connect(t)
	held := make(chan []string, 1)
	dead := errors.New("worker died")
	first := true
	a, err := NewConsumer(jsA, cfg, func(ctx context.Context, ss []schemas.Signal, _ []bool) error {
		if !first {
			return dead
		}
		first = false
		ids := make([]string, len(ss))
		for i, s := range ss {
			ids[i] = s.EventID
		}
		held <- ids
		<-ctx.Done()
		return dead
	}, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	stopA := run(t, a)
	var heldIDs []string
	select {
	case heldIDs = <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the first worker never got a batch")
	}
	ncA.Close()
	if err := stopA(); err != nil {
		t.Fatal(err)
	}

	// Its replacement binds the same durables and gets everything, the held batch
	// flagged as redelivered.
	r := newRecorder()
	b, _ := consumerFor(t, js, cfg, r)
	stopB := run(t, b)
	r.consumedAll(t, all, stopB)
	for _, id := range heldIDs {
		if !r.redelivered[id] {
			t.Errorf("%s, held by the dead worker, came without the redelivered flag", id)
		}
	}
}

func TestUndecodableTerminated(t *testing.T) {
	nc, js := connect(t)
	scfg := newStream(t, js, StreamConfig{Partitions: 1})
	ctx := context.Background()
	for _, garbage := range [][]byte{nil, []byte("not a signal"), {1, 2, 0}} {
		if _, err := js.Publish(ctx, scfg.PartitionSubject(0), garbage); err != nil {
			t.Fatal(err)
		}
	}
	p := publisher(t, nc, scfg)
	all := signals("after-garbage", 50, 5)
	publish(t, p, all, 50)

	r := newRecorder()
	cfg := ConsumerConfig{Stream: scfg, Partitions: []int{0}, BatchSize: 10, FlushInterval: 20 * time.Millisecond}
	c, set := consumerFor(t, js, cfg, r)
	stop := run(t, c)
	r.consumedAll(t, all, stop)
	if got := metric(set, "rung_stream_decode_errors_total"); got != "3" {
		t.Errorf("decode errors counted %s, want 3", got)
	}
	harness.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		n, err := pending(js, cfg, 0)
		if err == nil && n != 0 {
			err = fmt.Errorf("%d messages left unacked (the garbage must be terminated)", n)
		}
		return err
	})
}

func TestAgain(t *testing.T) {
	for _, tc := range []struct {
		delivered, seq, last uint64
		want                 bool
	}{
		{1, 1, 0, false},   // the partition's first message
		{1, 8, 7, false},   // the next one
		{2, 8, 7, true},    // delivered before, to this process or another
		{1, 5, 7, true},    // behind what was read: a consumer leader that forgot
		{1, 7, 7, true},    // the same message again
		{1, 100, 7, false}, // a gap: messages acked by an earlier owner
	} {
		if got := again(tc.delivered, tc.seq, tc.last); got != tc.want {
			t.Errorf("again(delivered %d, seq %d, last %d) = %v, want %v", tc.delivered, tc.seq, tc.last, got, tc.want)
		}
	}
}

// publisher returns a Publisher to scfg's stream, closed when the test ends.
func publisher(t *testing.T, nc *nats.Conn, scfg StreamConfig) *Publisher {
	t.Helper()
	p, err := NewPublisher(nc, PublisherConfig{Stream: scfg}, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}
