package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cespare/xxhash/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/schemas"
)

// Why a publish failed. Each wraps buffer.ErrFull: to the client every one of them means
// "not stored, retry later" (503 + Retry-After), and the reason goes to the metrics.
var (
	errStreamFull  = fmt.Errorf("%w: jetstream stream full", buffer.ErrFull)
	errPendingFull = fmt.Errorf("%w: too many publishes waiting for jetstream acks", buffer.ErrFull)
	errAckTimeout  = fmt.Errorf("%w: no jetstream ack in time", buffer.ErrFull)
	errUnavailable = fmt.Errorf("%w: jetstream unavailable", buffer.ErrFull)
)

// PublisherConfig configures a Publisher. Zero fields take the defaults.
type PublisherConfig struct {
	Stream     StreamConfig  // uses Subject and Partitions
	MaxPending int           // publishes waiting for an ack, over all callers; 16384
	AckTimeout time.Duration // one publish attempt; 2s
	Timeout    time.Duration // bound of one Append, retries included, under ctx; 5s
	Retries    int           // republishes of a signal after a timeout or an unavailable stream; 8 (Timeout bounds them first: a leader election takes seconds)
	RetryWait  time.Duration // before the first republish, doubled each time; 100ms
}

func (c *PublisherConfig) defaults() {
	c.Stream.defaults()
	if c.MaxPending == 0 {
		c.MaxPending = 16384
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 2 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 8
	}
	if c.RetryWait == 0 {
		c.RetryWait = 100 * time.Millisecond
	}
}

// Publisher writes signals into the stream and says, per signal, whether JetStream has
// it. It is what lets a collector answer 202 only for stored signals.
type Publisher struct {
	cfg      PublisherConfig
	js       jetstream.JetStream
	subjects []string // by partition
	msgs     sync.Pool
	calls    sync.Pool

	mu       sync.RWMutex // guards closed against wg.Add
	closed   bool
	inflight sync.WaitGroup

	published  *metrics.Counter
	duplicates *metrics.Counter
	retries    *metrics.Counter
	errs       map[error]*metrics.Counter // by the errors above and buffer.ErrClosed
}

// outMsg is one message on its way, the frames of a request's signals bound for one
// partition: the message, its header and its encoding, reused once JetStream has
// answered for it.
type outMsg struct {
	msg  nats.Msg
	id   []string // the header's Nats-Msg-Id value
	buf  []byte
	n    int           // signals framed
	ids  xxhash.Digest // of their event_ids, for id when n > 1
	part int
}

// call is the per-Append scratch space.
type call struct {
	msgs        []*outMsg
	futures     []jetstream.PubAckFuture
	errs        []error // by message
	round, next []int   // indexes of msgs: published in this round, to publish in the next
	byPart      []int   // partition → index of its message, -1 when none yet
	of          []int   // signal → index of its message
}

// NewPublisher makes a Publisher on nc and registers its metrics in set. It keeps its
// own JetStream context, whose async publish settings it owns.
func NewPublisher(nc *nats.Conn, cfg PublisherConfig, set *metrics.Set) (*Publisher, error) {
	cfg.defaults()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	p := &Publisher{
		cfg:        cfg,
		js:         js,
		subjects:   make([]string, cfg.Stream.Partitions),
		published:  set.NewCounter(`rung_stream_published_total`),
		duplicates: set.NewCounter(`rung_stream_published_duplicates_total`),
		retries:    set.NewCounter(`rung_stream_publish_retries_total`),
		errs: map[error]*metrics.Counter{
			errStreamFull:    set.NewCounter(`rung_stream_publish_errors_total{reason="stream_full"}`),
			errPendingFull:   set.NewCounter(`rung_stream_publish_errors_total{reason="pending_full"}`),
			errAckTimeout:    set.NewCounter(`rung_stream_publish_errors_total{reason="ack_timeout"}`),
			errUnavailable:   set.NewCounter(`rung_stream_publish_errors_total{reason="unavailable"}`),
			buffer.ErrClosed: set.NewCounter(`rung_stream_publish_errors_total{reason="closed"}`),
		},
	}
	for i := range p.subjects {
		p.subjects[i] = cfg.Stream.PartitionSubject(i)
	}
	p.msgs.New = func() any {
		m := &outMsg{id: make([]string, 1), buf: make([]byte, 0, 512)}
		m.msg.Header = nats.Header{jetstream.MsgIDHeader: m.id}
		return m
	}
	p.calls.New = func() any { return new(call) }
	return p, nil
}

// Append publishes the signals, one message per partition they fall in (the frames of
// those signals, in order), and waits for JetStream's acks. On return errs[i] is nil
// when signals[i] is stored, or an error that is buffer.ErrFull (stream full, too many
// publishes pending, no ack in time, JetStream unavailable) or buffer.ErrClosed. errs
// must be as long as signals. Publishes are asynchronous: one call waits about one
// round trip, however many signals it carries. A message whose ack did not come is
// republished with the same Nats-Msg-Id (the event_id of a lone signal, else a hash of
// the event_ids), so a retry that reaches a stream which did store the first copy is
// dropped as a duplicate.
//
// Append may be called from many goroutines at once. It does not keep the signals.
func (p *Publisher) Append(ctx context.Context, signals []*schemas.Signal, errs []error) {
	errs = errs[:len(signals)]
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		for i := range errs {
			errs[i] = buffer.ErrClosed
		}
		p.errs[buffer.ErrClosed].Add(len(errs))
		return
	}
	p.inflight.Add(1)
	p.mu.RUnlock()
	defer p.inflight.Done()

	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()

	c := p.calls.Get().(*call)
	c.msgs, c.futures, c.errs, c.next, c.of = c.msgs[:0], c.futures[:0], c.errs[:0], c.next[:0], c.of[:0]
	if len(c.byPart) != len(p.subjects) {
		c.byPart = make([]int, len(p.subjects))
		for i := range c.byPart {
			c.byPart[i] = -1
		}
	}
	for _, s := range signals {
		part := PartitionOf(s.AnonymousID, len(p.subjects))
		j := c.byPart[part]
		if j < 0 {
			j = len(c.msgs)
			c.byPart[part] = j
			m := p.msgs.Get().(*outMsg)
			m.buf, m.n = m.buf[:0], 0
			m.ids.Reset()
			m.part = part
			m.msg.Subject = p.subjects[part]
			c.msgs = append(c.msgs, m)
			c.futures = append(c.futures, nil)
			c.errs = append(c.errs, nil)
			c.next = append(c.next, j)
		}
		m := c.msgs[j]
		m.buf = AppendFrame(m.buf, s)
		m.n++
		m.ids.WriteString(s.EventID)
		m.ids.WriteString("\x00")
		if m.n == 1 {
			m.id[0] = s.EventID
		}
		c.of = append(c.of, j)
	}
	for _, m := range c.msgs {
		c.byPart[m.part] = -1
		m.msg.Data = m.buf
		if m.n > 1 {
			// The same signals framed the same way (a retry of the same request)
			// carry the same id, so JetStream drops the second copy.
			m.id[0] = "rung-" + strconv.FormatUint(m.ids.Sum64(), 36) + "-" + strconv.Itoa(m.n)
		}
	}

	wait := p.cfg.RetryWait
	for attempt := 0; ; attempt++ {
		// This round publishes c.round; what may succeed on another try goes to c.next.
		c.round, c.next = c.next, c.round[:0]
		for _, j := range c.round {
			c.futures[j], c.errs[j] = p.publish(&c.msgs[j].msg)
			if c.errs[j] == errUnavailable {
				c.next = append(c.next, j)
			}
		}
		for _, j := range c.round {
			f := c.futures[j]
			if f == nil {
				continue
			}
			c.futures[j] = nil
			select {
			case ack := <-f.Ok():
				c.errs[j] = nil
				if ack.Duplicate {
					p.duplicates.Add(c.msgs[j].n)
				}
			case err := <-f.Err():
				c.errs[j] = classify(err)
			case <-ctx.Done():
				// The ack may still come: the message stays with JetStream's
				// client, so it must not be reused.
				c.msgs[j] = nil
				c.errs[j] = errAckTimeout
				continue
			}
			if c.errs[j] == errAckTimeout || c.errs[j] == errUnavailable {
				c.next = append(c.next, j)
			}
		}
		if len(c.next) == 0 || attempt == p.cfg.Retries || !sleep(ctx, wait) {
			break
		}
		wait *= 2
		for _, j := range c.next {
			p.retries.Add(c.msgs[j].n)
		}
	}

	n := 0
	for i, j := range c.of {
		if errs[i] = c.errs[j]; errs[i] == nil {
			n++
		} else {
			p.errs[errs[i]].Inc()
		}
	}
	for _, m := range c.msgs {
		if m != nil {
			m.msg.Data = nil
			m.id[0] = ""
			p.msgs.Put(m)
		}
	}
	p.published.Add(n)
	clear(c.msgs)
	clear(c.futures)
	clear(c.errs)
	p.calls.Put(c)
}

// publish starts one asynchronous publish; its outcome is the future or the error.
func (p *Publisher) publish(m *nats.Msg) (jetstream.PubAckFuture, error) {
	f, err := p.js.PublishMsgAsync(m)
	if err != nil {
		return nil, classify(err)
	}
	return f, nil
}

// errCodeStreamStoreFailed is nats-server's JSStreamStoreFailedF, which the client
// library does not name: the stream would not store the message (with Discard new,
// because it is at MaxBytes or MaxMsgs).
const errCodeStreamStoreFailed jetstream.ErrorCode = 10077

// classify maps what the NATS client says to one of the reasons above.
func classify(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return errPendingFull
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, context.DeadlineExceeded):
		return errAckTimeout
	case errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStreamStoreFailed:
		// Discard new: "maximum bytes exceeded" or "maximum messages exceeded".
		return errStreamFull
	}
	// No responders, disconnected, no stream leader, connection closed: JetStream may
	// be back in a moment.
	return errUnavailable
}

// sleep waits d or until ctx is done, and says whether it waited the whole d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Close stops intake, every Append from now on answers buffer.ErrClosed, and waits for
// the Appends in flight to finish. The connection is the caller's to close, after.
func (p *Publisher) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.inflight.Wait()
}
