package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/rungdev/rung/buffer/batch"
	"github.com/rungdev/rung/schemas"
)

// Handler takes one batch to the sink. redelivered[i] says that signals[i] was
// delivered before (a hint: a client's resend comes in a message of its own, so rung's
// aggregator checks every batch against the sink, not only these). Returning
// nil says the sink holds the whole batch: its messages are then acked and gone from
// the stream. An error sends them all back, to be delivered again after a delay. The
// slices are reused after Handler returns: it must not keep them (the signals' strings
// it may keep).
type Handler func(ctx context.Context, signals []schemas.Signal, redelivered []bool) error

// ConsumerConfig configures a Consumer. Zero fields take the defaults.
type ConsumerConfig struct {
	Stream        StreamConfig  // uses Name, Subject and Partitions
	Partitions    []int         // the partitions this consumer owns; see ParsePartitions
	Durable       string        // durable name prefix: partition 7 is "<Durable>-p07"; "rung"
	BatchSize     int           // signals that make a handler call; 5000 (one message may carry it past)
	FlushInterval time.Duration // the oldest signal of a batch waits no longer; 1s
	AckWait       time.Duration // a message not acked by then is delivered again; 30s
	MaxAckPending int           // unacked messages per partition; 2*BatchSize + 1024
	NakDelay      time.Duration // how long a failed batch waits before it comes back; 1s
	StopTimeout   time.Duration // bound of the last flush when Run stops; 10s
	Logger        *slog.Logger  // slog.Default()
}

func (c *ConsumerConfig) defaults() {
	c.Stream.defaults()
	if c.Durable == "" {
		c.Durable = "rung"
	}
	if c.BatchSize == 0 {
		c.BatchSize = 5000
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = time.Second
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 2*c.BatchSize + 1024
	}
	if c.NakDelay == 0 {
		c.NakDelay = time.Second
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// DurableName returns the durable consumer name of partition p: the same in every
// process, so a replacement worker takes over where the last owner stopped.
func (c ConsumerConfig) DurableName(p int) string {
	c.defaults()
	return fmt.Sprintf("%s-p%02d", c.Durable, p)
}

// Consumer reads the partitions it owns and hands their signals to a Handler in
// batches, acking each message only once the handler has put its batch in the sink.
// Signals of one partition reach the handler in stream order, but for a failed batch:
// its messages come back after later ones (the sessionizer takes late signals).
type Consumer struct {
	cfg    ConsumerConfig
	policy batch.Policy // from cfg: BatchSize and FlushInterval
	js     jetstream.JetStream
	handle Handler

	reads        *metrics.Counter // decoded and queued for a batch; read - consumed are in flight
	consumed     *metrics.Counter
	redelivered  *metrics.Counter
	decodeErrors *metrics.Counter
	batches      *metrics.Counter
	failures     *metrics.Counter
	ackErrors    *metrics.Counter
}

// NewConsumer makes a Consumer of the partitions cfg names, delivering to handle, with
// its metrics in set. Nothing is read before Run.
func NewConsumer(js jetstream.JetStream, cfg ConsumerConfig, handle Handler, set *metrics.Set) (*Consumer, error) {
	cfg.defaults()
	if len(cfg.Partitions) == 0 {
		return nil, errors.New("consumer: no partitions to read")
	}
	for _, p := range cfg.Partitions {
		if p < 0 || p >= cfg.Stream.Partitions {
			return nil, fmt.Errorf("consumer: partition %d out of range: the stream has partitions 0-%d", p, cfg.Stream.Partitions-1)
		}
	}
	return &Consumer{
		cfg:          cfg,
		policy:       batch.Policy{Count: cfg.BatchSize, Period: cfg.FlushInterval},
		js:           js,
		handle:       handle,
		reads:        set.NewCounter(`rung_stream_read_total`),
		consumed:     set.NewCounter(`rung_stream_consumed_total`),
		redelivered:  set.NewCounter(`rung_stream_redelivered_total`),
		decodeErrors: set.NewCounter(`rung_stream_decode_errors_total`),
		batches:      set.NewCounter(`rung_stream_batches_total`),
		failures:     set.NewCounter(`rung_stream_batch_failures_total`),
		ackErrors:    set.NewCounter(`rung_stream_ack_errors_total`),
	}, nil
}

// item is one decoded message on its way from a partition reader to the batch.
type item struct {
	sigs        []schemas.Signal
	msg         jetstream.Msg
	seq         uint64 // in the stream
	redelivered bool
}

// Run checks the stream, creates or binds one durable pull consumer per owned
// partition, and delivers batches until ctx is done. It then stops reading, gives the
// handler what it holds under a fresh context bounded by StopTimeout, acks it, and
// returns. Messages read but never handed over are not acked: JetStream delivers them
// again after AckWait, to whichever process owns the partition then.
//
// Goroutines: one reader per partition, stopped through its message iterator and
// waited for before Run returns; the batch and the handler live in Run's goroutine.
func (c *Consumer) Run(ctx context.Context) error {
	var s jetstream.Stream
	err := c.retry(ctx, "look up stream "+c.cfg.Stream.Name, func(ctx context.Context) (err error) {
		s, err = c.js.Stream(ctx, c.cfg.Stream.Name)
		return err
	})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	if err := checkPartitions(c.cfg.Stream, s.CachedInfo()); err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	// The durables are made side by side: on a replicated stream each is a Raft group
	// of its own, and made one after another 64 of them take tens of seconds.
	iters := make([]jetstream.MessagesContext, len(c.cfg.Partitions))
	stop := func() {
		for _, it := range iters {
			if it != nil {
				it.Stop()
			}
		}
	}
	// Prefetch is bounded in bytes: a group-committed message may hold 64 KiB, and a
	// worker owns up to every partition.
	prefetch := max(256<<10, 64<<20/len(c.cfg.Partitions))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, p := range c.cfg.Partitions {
		g.Go(func() error {
			name := c.cfg.DurableName(p)
			var cons jetstream.Consumer
			err := c.retry(gctx, "durable "+name+" on "+c.cfg.Stream.PartitionSubject(p), func(ctx context.Context) (err error) {
				cons, err = s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
					Durable:       name,
					FilterSubject: c.cfg.Stream.PartitionSubject(p),
					AckPolicy:     jetstream.AckExplicitPolicy,
					AckWait:       c.cfg.AckWait,
					MaxAckPending: c.cfg.MaxAckPending,
					DeliverPolicy: jetstream.DeliverAllPolicy,
					Replicas:      0, // as the stream
				})
				return err
			})
			if err != nil {
				return err
			}
			if iters[i], err = cons.Messages(jetstream.PullMaxBytes(prefetch)); err != nil {
				return fmt.Errorf("read partition %d (durable %s): %w", p, name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		stop()
		return fmt.Errorf("consumer: %w", err)
	}

	items := make(chan item, min(c.cfg.BatchSize, 4096))
	var readers sync.WaitGroup
	for i, it := range iters {
		readers.Add(1)
		go func() {
			defer readers.Done()
			c.read(ctx, c.cfg.Partitions[i], it, items)
		}()
	}

	// A batch under way when Run is stopped is finished, not abandoned, within
	// StopTimeout: the handler's writes retry until their context ends.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopWork := context.AfterFunc(ctx, func() { time.AfterFunc(c.cfg.StopTimeout, cancelWork) })
	defer stopWork()

	b := outgoing{seqs: make(map[uint64]bool)}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case it := <-items:
			if b.add(it) == len(it.sigs) { // the batch's first message: the timer is its age
				timer.Reset(c.policy.Period)
			}
			if c.policy.Full(len(b.sigs), 0) {
				timer.Stop()
				c.flush(work, &b)
			}
		case <-timer.C:
			c.flush(work, &b)
		case <-ctx.Done():
			stop()
			readers.Wait()
			for len(items) > 0 {
				b.add(<-items)
			}
			fctx, cancel := context.WithTimeout(context.Background(), c.cfg.StopTimeout)
			defer cancel()
			c.flush(fctx, &b)
			if err := c.js.Conn().FlushWithContext(fctx); err != nil && !c.js.Conn().IsClosed() {
				c.cfg.Logger.Warn("stream consumer: acks may not have reached the server before stop", "err", err)
			}
			return nil
		}
	}
}

// retry calls f until it succeeds, ctx is done, or JetStream calls the request bad.
// In a cluster that has just lost a node, creating a replicated consumer can take
// longer than one request's timeout while its peers are placed and elected; a worker
// starting then should wait for JetStream rather than exit.
func (c *Consumer) retry(ctx context.Context, what string, f func(context.Context) error) error {
	wait := 500 * time.Millisecond
	for {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := f(rctx)
		cancel()
		if err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.Code == 400 || errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("%s: %w", what, err)
		}
		c.cfg.Logger.Warn("stream consumer: JetStream not ready, retrying", "what", what, "in", wait, "err", err)
		if !sleep(ctx, wait) {
			return fmt.Errorf("%s: %w (gave up: %w)", what, err, ctx.Err())
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// read moves partition p's messages, decoded and in order, to items until the
// iterator stops.
func (c *Consumer) read(ctx context.Context, p int, it jetstream.MessagesContext, items chan<- item) {
	var last uint64 // the highest stream sequence read from p
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return
		}
		if err != nil {
			c.cfg.Logger.Warn("stream consumer: read", "partition", p, "err", err)
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		var x item
		if x.sigs, err = ParseFrames(msg.Data(), nil); err != nil {
			// A message no build can read would block the partition forever.
			c.decodeErrors.Inc()
			c.cfg.Logger.Error("stream consumer: dropping a message that does not decode", "partition", p, "subject", msg.Subject(), "err", err)
			if err := msg.Term(); err != nil {
				c.ackErrors.Inc()
			}
			continue
		}
		x.msg = msg
		if md, err := msg.Metadata(); err == nil {
			x.seq = md.Sequence.Stream
			x.redelivered = again(md.NumDelivered, x.seq, last)
			last = max(last, x.seq)
		}
		select {
		case items <- x:
			c.reads.Add(len(x.sigs))
		case <-ctx.Done():
			return // not acked: delivered again after AckWait
		}
	}
}

// again reports whether a message may have been delivered before: by its delivery
// count, or because its partition already gave this process a message at or past its
// sequence. A partition delivers in stream order, so a lower sequence is one coming
// back; and a consumer whose leader died can send acked messages again at delivery
// count 1 when its new leader had not heard of their delivery (the likeliest cause of
// 68 signals stored twice in one CI run of TestCluster; not reproduced since).
func again(delivered, seq, last uint64) bool {
	return delivered > 1 || seq <= last
}

// outgoing is the batch the handler gets next, with the messages to ack once it has.
type outgoing struct {
	sigs []schemas.Signal
	re   []bool
	msgs []jetstream.Msg
	seqs map[uint64]bool // stream sequences in the batch
}

func (b *outgoing) add(it item) int {
	b.msgs = append(b.msgs, it.msg)
	if it.seq != 0 {
		// A message held past AckWait (a slow sink) is delivered again while its
		// first copy waits here: both are acked, its signals are kept once.
		if b.seqs[it.seq] {
			return len(b.sigs)
		}
		b.seqs[it.seq] = true
	}
	b.sigs = append(b.sigs, it.sigs...)
	for range it.sigs {
		b.re = append(b.re, it.redelivered)
	}
	return len(b.sigs)
}

// flush hands b to the handler, then acks or naks its messages, and empties it.
func (c *Consumer) flush(ctx context.Context, b *outgoing) {
	if len(b.sigs) == 0 {
		return
	}
	n := len(b.sigs)
	err := c.handle(ctx, b.sigs, b.re)
	c.batches.Inc()
	if err == nil {
		for _, m := range b.msgs {
			if err := m.Ack(); err != nil {
				c.ackErrors.Inc()
			}
		}
		c.consumed.Add(n)
		for _, r := range b.re {
			if r {
				c.redelivered.Inc()
			}
		}
	} else {
		c.failures.Inc()
		c.cfg.Logger.Error("stream consumer: batch not stored, its messages come back", "signals", n, "retry_in", c.cfg.NakDelay, "err", err)
		for _, m := range b.msgs {
			if err := m.NakWithDelay(c.cfg.NakDelay); err != nil {
				c.ackErrors.Inc()
			}
		}
	}
	clear(b.sigs)
	clear(b.msgs)
	clear(b.seqs)
	b.sigs, b.re, b.msgs = b.sigs[:0], b.re[:0], b.msgs[:0]
}
