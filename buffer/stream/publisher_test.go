package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/buffer/stream/streamtest"
	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

// TestGroupCommit has many goroutines append small requests to a stream of two
// partitions at once, and checks that their signals share messages (far fewer
// messages than requests) and that a Consumer gets every acked signal exactly once,
// in each visitor's order. Linger is an hour: a message that waited for it instead of
// for the message in flight ahead of it would make its Appends time out.
func TestGroupCommit(t *testing.T) {
	nc, js := connect(t)
	cfg := newStream(t, js, StreamConfig{Partitions: 2, Memory: true})
	set := metrics.NewSet()
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg, Linger: time.Hour}, set)
	if err != nil {
		t.Fatal(err)
	}

	const goroutines, requests, perRequest = 64, 20, 5
	var (
		mu  sync.Mutex
		all []*schemas.Signal
		wg  sync.WaitGroup
	)
	for g := range goroutines {
		wg.Go(func() {
			errs := make([]error, perRequest)
			for r := range requests {
				ss := signals(fmt.Sprintf("gc%d-%d", g, r), perRequest, 2)
				for i, s := range ss {
					// Each goroutine has visitors of its own, whose signals count up
					// across its requests (the recorder checks their order).
					s.AnonymousID = fmt.Sprintf("g%d-%s", g, s.AnonymousID)
					s.ReceivedAt = int64(r*perRequest + i)
				}
				p.Append(context.Background(), ss, errs)
				for i, err := range errs {
					if err != nil {
						t.Errorf("append %s: %v", ss[i].EventID, err)
					}
				}
				mu.Lock()
				all = append(all, ss...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	p.Close()
	if t.Failed() {
		t.FailNow()
	}

	info, err := js.Stream(context.Background(), cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	msgs := info.CachedInfo().State.Msgs
	t.Logf("%d requests of %d signals: %d messages", goroutines*requests, perRequest, msgs)
	// One message per request and partition it touched would be about 2 per request.
	if msgs == 0 || msgs > goroutines*requests/4 {
		t.Errorf("stream holds %d messages for %d requests: want far fewer than the requests", msgs, goroutines*requests)
	}
	if got := metric(set, "rung_stream_messages_total"); got != strconv.FormatUint(msgs, 10) {
		t.Errorf("messages counted %s, the stream holds %d", got, msgs)
	}
	if got := metric(set, "rung_stream_published_total"); got != strconv.Itoa(len(all)) {
		t.Errorf("published counted %s, want %d", got, len(all))
	}

	r := newRecorder()
	c, _ := consumerFor(t, js, ConsumerConfig{Stream: cfg, Partitions: []int{0, 1}, BatchSize: 500, FlushInterval: 20 * time.Millisecond}, r)
	stop := run(t, c)
	r.consumedAll(t, all, stop)
}

// TestLoneAppendDoesNotLinger: a request alone on its partitions is published at once,
// not after Linger.
func TestLoneAppendDoesNotLinger(t *testing.T) {
	nc, js := connect(t)
	cfg := newStream(t, js, StreamConfig{Partitions: 4, Memory: true})
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg, Linger: 10 * time.Second, Timeout: time.Minute}, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for round := range 3 {
		done := make(chan []error, 1)
		go func() {
			errs := make([]error, 20)
			p.Append(context.Background(), signals(fmt.Sprintf("lone%d", round), 20, 20), errs)
			done <- errs
		}()
		select {
		case errs := <-done:
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
		case <-time.After(5 * time.Second): // half the Linger
			t.Fatalf("round %d: a lone Append waited for the linger", round)
		}
	}
}

// holdPartition makes partition 0 of p look as if a message were in flight, so that
// Appends to it share its open message until release is called.
func holdPartition(p *Publisher) (release func()) {
	pt := &p.parts[0]
	pt.mu.Lock()
	pt.inflight++
	pt.mu.Unlock()
	return func() { p.answered(pt) }
}

// waitOpen waits until partition 0's open message holds n signals.
func waitOpen(t *testing.T, p *Publisher, n int) {
	t.Helper()
	harness.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		pt := &p.parts[0]
		pt.mu.Lock()
		defer pt.mu.Unlock()
		if pt.open == nil || pt.open.n != n {
			return fmt.Errorf("the open message does not hold the %d signals yet", n)
		}
		return nil
	})
}

// appendAsync runs Append in a goroutine; the channel gets its errors.
func appendAsync(ctx context.Context, p *Publisher, ss []*schemas.Signal) <-chan []error {
	done := make(chan []error, 1)
	go func() {
		errs := make([]error, len(ss))
		p.Append(ctx, ss, errs)
		done <- errs
	}()
	return done
}

// TestAppendGivesUpAlone: an Append whose ctx ends while its message waits answers
// errAckTimeout for its signals; the message still goes, for the other Append in it.
func TestAppendGivesUpAlone(t *testing.T) {
	nc, js := connect(t)
	cfg := newStream(t, js, StreamConfig{Partitions: 1, Memory: true})
	set := metrics.NewSet()
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg, Linger: time.Hour, Timeout: time.Minute}, set)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	release := holdPartition(p)

	ctx, cancel := context.WithCancel(context.Background())
	quitter := appendAsync(ctx, p, signals("quit", 3, 3))
	waitOpen(t, p, 3)
	stayer := appendAsync(context.Background(), p, signals("stay", 4, 4))
	waitOpen(t, p, 7)
	cancel()
	for _, err := range <-quitter {
		if !errors.Is(err, errAckTimeout) {
			t.Errorf("cancelled Append: %v, want errAckTimeout", err)
		}
	}
	release()
	for _, err := range <-stayer {
		if err != nil {
			t.Errorf("Append sharing the message: %v", err)
		}
	}
	info, err := js.Stream(context.Background(), cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("stream holds %d messages, want the 1 both Appends shared", n)
	}
	for name, want := range map[string]string{
		"rung_stream_published_total":                            "4",
		`rung_stream_publish_errors_total{reason="ack_timeout"}`: "3",
		"rung_stream_messages_total":                             "1",
		"rung_stream_message_signals_count":                      "1",
		"rung_stream_message_signals_sum":                        "7",
	} {
		if got := metric(set, name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
}

// TestStreamFullShared: a stream-full refusal of a message reaches every Append in it.
func TestStreamFullShared(t *testing.T) {
	nc, js := connect(t)
	// File storage: see StreamConfig.Memory.
	cfg := newStream(t, js, StreamConfig{MaxBytes: 8 << 10, Partitions: 1})
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg, Linger: time.Hour, Timeout: time.Minute}, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Fill the stream with lone Appends until it refuses one.
	errs := make([]error, 5)
	for i := 0; ; i++ {
		if i == 1000 {
			t.Fatal("the stream never filled up")
		}
		p.Append(context.Background(), signals(fmt.Sprintf("fill%d", i), 5, 5), errs)
		if errors.Is(errs[0], errStreamFull) {
			break
		}
		if errs[0] != nil {
			t.Fatal(errs[0])
		}
	}

	release := holdPartition(p)
	a := appendAsync(context.Background(), p, signals("a", 5, 5))
	waitOpen(t, p, 5)
	b := appendAsync(context.Background(), p, signals("b", 5, 5))
	waitOpen(t, p, 10)
	release()
	for name, done := range map[string]<-chan []error{"a": a, "b": b} {
		for _, err := range <-done {
			if !errors.Is(err, errStreamFull) || !errors.Is(err, buffer.ErrFull) {
				t.Errorf("Append %s: %v, want stream full", name, err)
			}
		}
	}
}

// TestCloseFlushes: Close publishes the open messages and waits for their Appends.
func TestCloseFlushes(t *testing.T) {
	nc, js := connect(t)
	cfg := newStream(t, js, StreamConfig{Partitions: 1, Memory: true})
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg, Linger: time.Hour, Timeout: time.Minute}, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	holdPartition(p) // never released: only Close can send the message
	done := appendAsync(context.Background(), p, signals("close", 3, 3))
	waitOpen(t, p, 3)
	p.Close()
	select {
	case errs := <-done:
		for _, err := range errs {
			if err != nil {
				t.Errorf("Append flushed by Close: %v", err)
			}
		}
	default:
		t.Fatal("Close returned before the Append whose message it flushed")
	}
}

// TestAppendWhileDisconnected: with the NATS server down, Append answers at once, for
// every signal, that it is not connected, and publishes nothing: once the server is
// back, the stream holds only what was acknowledged.
func TestAppendWhileDisconnected(t *testing.T) {
	srv := streamtest.StartServer(t)
	nc, err := nats.Connect(srv.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := StreamConfig{Name: "OUTAGE", Subject: "outage", Partitions: 2}
	if err := Ensure(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	set := metrics.NewSet()
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg, Timeout: time.Hour}, set)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	publish(t, p, signals("before", 10, 3), 5)

	srv.Kill()
	harness.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if nc.IsConnected() {
			return errors.New("the client has not noticed the server is gone")
		}
		return nil
	})
	refused := signals("during", 10, 3)
	errs := make([]error, len(refused))
	p.Append(context.Background(), refused, errs) // Timeout is an hour: a wait would hang the test
	for i, err := range errs {
		if !errors.Is(err, errNotConnected) || !errors.Is(err, buffer.ErrFull) {
			t.Errorf("signal %d while disconnected: %v, want errNotConnected", i, err)
		}
	}

	srv.Start()
	harness.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		if !nc.IsConnected() {
			return errors.New("not reconnected yet")
		}
		return nil
	})
	publish(t, p, signals("after", 10, 3), 5)
	s, err := js.Stream(context.Background(), cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	var stored int
	cons, err := s.CreateOrUpdateConsumer(context.Background(), jetstream.ConsumerConfig{Durable: "check", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		sigs, err := ParseFrames(m.Data(), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range sigs {
			if strings.HasPrefix(g.EventID, "during") {
				t.Errorf("%s, refused while disconnected, is in the stream", g.EventID)
			}
			stored++
		}
	}
	if stored != 20 {
		t.Errorf("the stream holds %d signals, want the 20 acknowledged", stored)
	}
	if got := metric(set, `rung_stream_publish_errors_total{reason="not_connected"}`); got != "10" {
		t.Errorf("not_connected refusals counted: %s, want 10", got)
	}
}
