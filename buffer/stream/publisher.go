package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
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
	errStreamFull   = fmt.Errorf("%w: jetstream stream full", buffer.ErrFull)
	errPendingFull  = fmt.Errorf("%w: too many publishes waiting for jetstream acks", buffer.ErrFull)
	errAckTimeout   = fmt.Errorf("%w: no jetstream ack in time", buffer.ErrFull)
	errUnavailable  = fmt.Errorf("%w: jetstream unavailable", buffer.ErrFull)
	errNotConnected = fmt.Errorf("%w: not connected to nats", buffer.ErrFull)
)

// PublisherConfig configures a Publisher. Zero fields take the defaults.
type PublisherConfig struct {
	Stream     StreamConfig  // uses Subject and Partitions
	MaxPending int           // publishes waiting for an ack, over all callers; 16384
	AckTimeout time.Duration // one publish attempt; 2s
	Timeout    time.Duration // bound of one Append, and of one message's retries; 5s
	Retries    int           // republishes of a message after a timeout or an unavailable stream; 8 (Timeout bounds them first: a leader election takes seconds)
	RetryWait  time.Duration // before the first republish, doubled each time; 100ms

	// A partition's open message is published when its partition has no message
	// waiting for its first ack, when it reaches MaxMessageBytes, or when it has
	// waited Linger behind a message in flight, whichever comes first.
	Linger          time.Duration // 5ms
	MaxMessageBytes int           // 64 KiB; one Append's frames for a partition are never split, so a message may be larger
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
	if c.Linger == 0 {
		c.Linger = 5 * time.Millisecond
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 64 << 10
	}
}

// Publisher writes signals into the stream and says, per signal, whether JetStream has
// it. It is what lets a collector answer 202 only for stored signals.
//
// It commits in groups: JetStream's cost is per message, so the signals of concurrent
// Appends bound for one partition share a message. Each partition has at most one open
// message taking frames; it is sealed and published at once when the partition has
// nothing waiting for a first ack (so a lone request waits one round trip), else when
// the message in flight is answered, when it is full or when it has lingered. Under
// load the messages grow with the ack latency instead of their number growing with
// the requests.
type Publisher struct {
	cfg      PublisherConfig
	nc       *nats.Conn
	js       jetstream.JetStream
	subjects []string // by partition
	parts    []partition
	msgs     sync.Pool
	calls    sync.Pool

	mu       sync.RWMutex // guards closed against inflight.Add
	closed   bool
	inflight sync.WaitGroup // Appends
	senders  sync.WaitGroup // goroutines seeing a message through to its final answer

	published  *metrics.Counter
	duplicates *metrics.Counter
	retries    *metrics.Counter
	unsure     *metrics.Counter
	messages   *metrics.Counter
	perMessage *metrics.Histogram
	errs       map[error]*metrics.Counter // by the errors above and buffer.ErrClosed
}

// partition is where the Appends meet that have signals for one partition.
type partition struct {
	mu       sync.Mutex
	open     *outMsg     // taking frames; nil when none
	inflight int         // sealed messages not answered yet for their first attempt
	linger   *time.Timer // armed while open waits behind a message in flight
	armed    bool
}

// outMsg is one message of the stream: the frames of the signals bound for one
// partition of one or more Appends, in the order they were added. Once sealed it is
// not changed; done is closed when err is its final answer.
type outMsg struct {
	msg  nats.Msg
	id   []string // the header's Nats-Msg-Id value
	buf  []byte
	n    int           // signals framed
	ids  xxhash.Digest // of their (site, visitor, event_id), for id when n > 1
	part int
	// The earliest deadline of the Appends in it: no attempt is made that could end
	// after it, so each of them hears the message's final answer, and nothing is
	// published for signals already answered 503.
	deadline time.Time
	refs     atomic.Int32 // the Appends with frames in it, and its sender
	done     chan struct{}
	err      error
}

// call is the per-Append scratch space: its signals grouped by partition.
type call struct {
	slots  []slot
	byPart []int // partition → index of its slot, -1 when none yet
	of     []int // signal → index of its slot
	next   []int // signal → the next signal of its slot, -1 at the end
}

// slot is one Append's frames for one partition and the message they went into.
type slot struct {
	part        int
	buf         []byte
	n           int
	first, last int // signals, chained through call.next
	m           *outMsg
	err         error
}

// NewPublisher makes a Publisher on nc and registers its metrics in set. It keeps its
// own JetStream context, whose async publish settings it owns. nc should be made with
// nats.ReconnectBufSize(-1): a publish buffered while the connection is down would be
// sent after its Append was answered 503.
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
		nc:         nc,
		js:         js,
		subjects:   make([]string, cfg.Stream.Partitions),
		parts:      make([]partition, cfg.Stream.Partitions),
		published:  set.NewCounter(`rung_stream_published_total`),
		duplicates: set.NewCounter(`rung_stream_published_duplicates_total`),
		retries:    set.NewCounter(`rung_stream_publish_retries_total`),
		unsure:     set.NewCounter(`rung_stream_publish_unsure_total`),
		messages:   set.NewCounter(`rung_stream_messages_total`),
		perMessage: set.NewHistogram(`rung_stream_message_signals`),
		errs: map[error]*metrics.Counter{
			errStreamFull:    set.NewCounter(`rung_stream_publish_errors_total{reason="stream_full"}`),
			errPendingFull:   set.NewCounter(`rung_stream_publish_errors_total{reason="pending_full"}`),
			errAckTimeout:    set.NewCounter(`rung_stream_publish_errors_total{reason="ack_timeout"}`),
			errUnavailable:   set.NewCounter(`rung_stream_publish_errors_total{reason="unavailable"}`),
			errNotConnected:  set.NewCounter(`rung_stream_publish_errors_total{reason="not_connected"}`),
			buffer.ErrClosed: set.NewCounter(`rung_stream_publish_errors_total{reason="closed"}`),
		},
	}
	for i := range p.subjects {
		p.subjects[i] = cfg.Stream.PartitionSubject(i)
	}
	p.msgs.New = func() any {
		m := &outMsg{id: make([]string, 1), buf: make([]byte, 0, 4096)}
		m.msg.Header = nats.Header{jetstream.MsgIDHeader: m.id}
		return m
	}
	p.calls.New = func() any { return new(call) }
	return p, nil
}

// Append publishes the signals and waits for JetStream's acks. On return errs[i] is
// nil when signals[i] is stored, or an error that is buffer.ErrFull (not connected,
// stream full, too many publishes pending, no ack in time, JetStream unavailable) or
// buffer.ErrClosed. errs must be as long as signals.
//
// The signals bound for one partition are framed, in order, into that partition's
// open message, which the signals of concurrent Appends share (see Publisher). A
// message whose ack did not come is republished with the same Nats-Msg-Id (the
// site, visitor and event_id of a lone signal, else a hash of them all), so a retry that
// reaches a stream which did store the first copy is dropped as a duplicate. Retries
// stop in time for the earliest Timeout of the Appends in the message, and every one
// of them gets the message's final answer: an error means that no attempt is still
// under way. It means "not stored" but in one case: an attempt was sent and its answer
// never came (the connection broke, or the ack timed out), and no retry resolved it;
// JetStream may then hold the message (counted in rung_stream_publish_unsure_total),
// and the client's resend of those signals is dropped by the aggregator, which stores
// a (site, anonymous_id, event_id) once. While the connection is down Append answers
// at once, publishing nothing. An Append whose ctx is cancelled answers errAckTimeout
// for the signals not answered yet; their messages carry on for the other Appends in
// them.
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

	if !p.nc.IsConnected() {
		// Known down: published now, the signals would wait in no buffer (see
		// NewPublisher) or be sent after the client was told 503.
		for i := range errs {
			errs[i] = errNotConnected
		}
		p.errs[errNotConnected].Add(len(errs))
		return
	}
	deadline := time.Now().Add(p.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}

	c := p.calls.Get().(*call)
	c.slots, c.of, c.next = c.slots[:0], c.of[:0], c.next[:0]
	if len(c.byPart) != len(p.subjects) {
		c.byPart = make([]int, len(p.subjects))
		for i := range c.byPart {
			c.byPart[i] = -1
		}
	}
	// Frames are made outside the partitions' locks; under them they are only copied.
	for i, s := range signals {
		part := PartitionOf(s.AnonymousID, len(p.subjects))
		j := c.byPart[part]
		if j < 0 {
			j = len(c.slots)
			c.byPart[part] = j
			if j < cap(c.slots) {
				c.slots = c.slots[:j+1]
			} else {
				c.slots = append(c.slots, slot{})
			}
			sl := &c.slots[j]
			sl.part, sl.buf, sl.n, sl.first, sl.m, sl.err = part, sl.buf[:0], 0, i, nil, nil
		} else {
			c.next[c.slots[j].last] = i
		}
		sl := &c.slots[j]
		sl.buf = AppendFrame(sl.buf, s)
		sl.n++
		sl.last = i
		c.of = append(c.of, j)
		c.next = append(c.next, -1)
	}
	for j := range c.slots {
		c.byPart[c.slots[j].part] = -1
		p.add(c, &c.slots[j], signals, deadline)
	}

	for j := range c.slots {
		sl := &c.slots[j]
		select {
		case <-sl.m.done:
			sl.err = sl.m.err
		case <-ctx.Done():
			select {
			case <-sl.m.done:
				sl.err = sl.m.err
			default:
				sl.err = errAckTimeout
			}
		}
	}
	n := 0
	for i, j := range c.of {
		if errs[i] = c.slots[j].err; errs[i] == nil {
			n++
		} else {
			p.errs[errs[i]].Inc()
		}
	}
	p.published.Add(n)
	for j := range c.slots {
		p.release(c.slots[j].m)
		c.slots[j].m = nil
	}
	p.calls.Put(c)
}

// add puts the frames of sl into its partition's open message, and seals the message
// if nothing else should be waited for. deadline is the Append's.
func (p *Publisher) add(c *call, sl *slot, signals []*schemas.Signal, deadline time.Time) {
	pt := &p.parts[sl.part]
	pt.mu.Lock()
	defer pt.mu.Unlock()
	m := pt.open
	if m != nil && len(m.buf)+len(sl.buf) > p.cfg.MaxMessageBytes {
		p.seal(pt)
		m = nil
	}
	if m == nil {
		m = p.msgs.Get().(*outMsg)
		m.buf, m.n, m.err, m.done = m.buf[:0], 0, nil, make(chan struct{})
		m.ids.Reset()
		m.part = sl.part
		m.msg.Subject = p.subjects[sl.part]
		m.deadline = deadline
		m.refs.Store(1) // its sender's
		pt.open = m
	}
	if deadline.Before(m.deadline) {
		m.deadline = deadline
	}
	m.buf = append(m.buf, sl.buf...)
	if m.n == 0 {
		// Scoped by site and visitor: an event_id is unique only for its visitor, and a
		// false duplicate would be acked and never stored.
		f := signals[sl.first]
		m.id[0] = f.Site + "/" + f.AnonymousID + "/" + f.EventID
	}
	for i := sl.first; i >= 0; i = c.next[i] {
		m.ids.WriteString(signals[i].Site)
		m.ids.WriteString("/")
		m.ids.WriteString(signals[i].AnonymousID)
		m.ids.WriteString("/")
		m.ids.WriteString(signals[i].EventID)
		m.ids.WriteString("\x00")
	}
	m.n += sl.n
	m.refs.Add(1)
	sl.m = m
	switch {
	case pt.inflight == 0 || len(m.buf) >= p.cfg.MaxMessageBytes:
		p.seal(pt)
	case !pt.armed:
		pt.armed = true
		if pt.linger == nil {
			pt.linger = time.AfterFunc(p.cfg.Linger, func() { p.lingered(pt) })
		} else {
			pt.linger.Reset(p.cfg.Linger)
		}
	}
}

// seal publishes the open message of pt, whose lock the caller holds: publishing
// under it keeps a partition's messages in the order they were sealed.
func (p *Publisher) seal(pt *partition) {
	m := pt.open
	pt.open = nil
	if pt.armed {
		pt.linger.Stop()
		pt.armed = false
	}
	m.msg.Data = m.buf
	if m.n > 1 {
		// The same signals framed the same way (a retry of the same lone request)
		// carry the same id, so JetStream drops the second copy.
		m.id[0] = "rung-" + strconv.FormatUint(m.ids.Sum64(), 36) + "-" + strconv.Itoa(m.n)
	}
	f, err := p.publish(&m.msg)
	pt.inflight++
	p.senders.Add(1)
	go p.send(pt, m, f, err)
}

// lingered seals the open message of pt, which has waited long enough behind the
// message in flight.
func (p *Publisher) lingered(pt *partition) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.armed = false
	if pt.open != nil {
		p.seal(pt)
	}
}

// answered notes that a message of pt had the answer to its first attempt, and
// publishes the open message that waited for it.
func (p *Publisher) answered(pt *partition) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.inflight--
	if pt.inflight == 0 && pt.open != nil {
		p.seal(pt)
	}
}

// send sees m through to its final answer, retrying what may succeed on another try,
// and tells the Appends waiting for it. f and err are the first attempt's. An attempt
// is made only if its ack timeout ends before m's deadline, so no attempt outlives
// the answer.
func (p *Publisher) send(pt *partition, m *outMsg, f jetstream.PubAckFuture, err error) {
	defer p.senders.Done()
	wait := p.cfg.RetryWait
	sent := false // an attempt went out and failed: JetStream may hold m all the same
	for attempt := 0; ; attempt++ {
		if err == nil {
			// The future always ends: the JetStream context's AckTimeout bounds it.
			select {
			case ack := <-f.Ok():
				if ack.Duplicate {
					p.duplicates.Add(m.n)
				}
			case e := <-f.Err():
				err = classify(e)
				sent = true
			}
		}
		if attempt == 0 {
			p.answered(pt)
		}
		if (err != errAckTimeout && err != errUnavailable) || attempt == p.cfg.Retries ||
			time.Until(m.deadline) < wait+p.cfg.AckTimeout {
			break
		}
		if !sent && !p.nc.IsConnected() {
			// Nothing of m ever left: it is not stored, and that is known now.
			break
		}
		time.Sleep(wait)
		wait *= 2
		p.retries.Add(m.n)
		if !p.nc.IsConnected() {
			// Published now, it would wait in a reconnect buffer and go out after the
			// Appends were answered.
			err = errUnavailable
			continue
		}
		f, err = p.publish(&m.msg)
	}
	if err != nil && sent && (err == errAckTimeout || err == errUnavailable) {
		p.unsure.Add(m.n)
	}
	p.messages.Inc()
	p.perMessage.Update(float64(m.n))
	m.err = err
	close(m.done)
	p.release(m)
}

// release drops one reference to m and reuses m when it was the last.
func (p *Publisher) release(m *outMsg) {
	if m.refs.Add(-1) > 0 {
		return
	}
	if cap(m.buf) > 4*p.cfg.MaxMessageBytes {
		return // a huge request's; not worth keeping
	}
	m.msg.Data = nil
	m.id[0] = ""
	m.done = nil
	p.msgs.Put(m)
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

// Close stops intake, every Append from now on answers buffer.ErrClosed, publishes the
// open messages and waits for the Appends in flight and their messages to finish. The
// connection is the caller's to close, after.
func (p *Publisher) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.flush()
	p.inflight.Wait()
	// No Append adds frames any more; whatever a linger timer has not sealed yet is
	// sealed here, before senders.Wait, so every senders.Add comes first.
	p.flush()
	p.senders.Wait()
}

// flush seals every open message.
func (p *Publisher) flush() {
	for i := range p.parts {
		pt := &p.parts[i]
		pt.mu.Lock()
		if pt.open != nil {
			p.seal(pt)
		}
		pt.mu.Unlock()
	}
}
