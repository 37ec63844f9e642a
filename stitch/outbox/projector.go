package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
)

// ProjectorConfig holds the projector's knobs. Zero values take the defaults given.
type ProjectorConfig struct {
	Durable   string        // durable consumer name; default "rung-projector"
	AckWait   time.Duration // redelivery after an unacked delivery; default 30s
	Batch     int           // messages fetched and written per transaction; default 100
	FetchWait time.Duration // longest wait for a batch; bounds how fast Run notices ctx; default 1s
	Logger    *slog.Logger  // default: discard
}

func (c *ProjectorConfig) setDefaults() {
	if c.Durable == "" {
		c.Durable = "rung-projector"
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Batch == 0 {
		c.Batch = 100
	}
	if c.FetchWait == 0 {
		c.FetchWait = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate says which knob cannot work.
func (c *ProjectorConfig) Validate() error {
	switch {
	case !validToken(c.Durable, false):
		return fmt.Errorf("%w: consumer name %q must be letters, digits, _ or -", ErrConfig, c.Durable)
	case c.AckWait < 100*time.Millisecond:
		return fmt.Errorf("%w: projector ack wait %v, want ≥ 100ms", ErrConfig, c.AckWait)
	case c.Batch < 1 || c.Batch > 10000:
		return fmt.Errorf("%w: projector batch %d, want 1–10000", ErrConfig, c.Batch)
	case c.FetchWait < 10*time.Millisecond:
		return fmt.Errorf("%w: projector fetch wait %v, want ≥ 10ms", ErrConfig, c.FetchWait)
	}
	return nil
}

// Projector is a durable JetStream consumer with explicit acks that writes each event
// into the events table and acks it only after the write committed. A crash between the
// two redelivers the message; the unique event_id makes the second write change nothing.
// Several projectors may share one durable consumer. A Projector is driven by one
// goroutine (Run); WriteMetrics may be called from any goroutine.
type Projector struct {
	db      *sql.DB
	dialect sqldb.Dialect
	js      jetstream.JetStream
	broker  BrokerConfig
	cfg     ProjectorConfig

	// afterCommit, when set (tests), runs after the batch committed and before any ack.
	afterCommit func(n int)

	projected, absorbed, redelivered, rejected, errs atomic.Int64
}

// NewProjector returns a projector reading broker's stream through nc (owned by the
// caller) into the events table of db.
func NewProjector(db *sql.DB, d sqldb.Dialect, nc *nats.Conn, broker BrokerConfig, cfg ProjectorConfig) (*Projector, error) {
	broker.setDefaults()
	cfg.setDefaults()
	if err := broker.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Projector{db: db, dialect: d, js: js, broker: broker, cfg: cfg}, nil
}

func (p *Projector) consumer(ctx context.Context) (jetstream.Consumer, error) {
	if _, err := EnsureStream(ctx, p.js, p.broker); err != nil {
		return nil, err
	}
	c, err := p.js.CreateOrUpdateConsumer(ctx, p.broker.Stream, jetstream.ConsumerConfig{
		Durable:       p.cfg.Durable,
		Description:   "rung projector: events into the events table",
		FilterSubject: p.broker.Subjects(),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       p.cfg.AckWait,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxDeliver:    -1,
		MaxAckPending: max(1000, 4*p.cfg.Batch),
	})
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s on %s: %w", p.cfg.Durable, p.broker.Stream, err)
	}
	return c, nil
}

// Run consumes until ctx is done and returns nil then, within about FetchWait. Broker and
// database failures are logged and retried with backoff; messages not acked are
// redelivered by the server.
func (p *Projector) Run(ctx context.Context) error {
	var cons jetstream.Consumer
	backoff := time.Duration(0)
	wait := func() bool {
		backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
		t := time.NewTimer(backoff)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		if cons == nil {
			c, err := p.consumer(ctx)
			if err != nil {
				if ctx.Err() == nil {
					p.cfg.Logger.Warn("projector cannot reach its consumer yet", "err", err)
				}
				if !wait() {
					break
				}
				continue
			}
			cons = c
		}
		b, err := cons.Fetch(p.cfg.Batch, jetstream.FetchMaxWait(p.cfg.FetchWait))
		if err != nil {
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				cons = nil
			}
			if ctx.Err() == nil && !errors.Is(err, nats.ErrConnectionReconnecting) {
				p.cfg.Logger.Warn("projector fetch failed", "err", err)
			}
			if !wait() {
				break
			}
			continue
		}
		var msgs []jetstream.Msg
		for m := range b.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
				p.cfg.Logger.Warn("projector fetch ended early", "err", err)
				if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
					cons = nil
				}
				if !wait() {
					break
				}
			}
			continue
		}
		if err := p.project(ctx, msgs); err != nil {
			p.errs.Add(1)
			if ctx.Err() == nil {
				p.cfg.Logger.Error("projector batch failed; it will be redelivered", "n", len(msgs), "err", err)
			}
			for _, m := range msgs {
				_ = m.NakWithDelay(backoff + 100*time.Millisecond)
			}
			if !wait() {
				break
			}
			continue
		}
		backoff = 0
	}
	return nil
}

// project writes one fetched batch in one transaction, then acks it. Undecodable or
// invalid events are terminated (counted, logged), never retried for ever.
func (p *Projector) project(ctx context.Context, msgs []jetstream.Msg) error {
	type result struct {
		inserted, bad, redelivered bool
	}
	res := make([]result, len(msgs))
	err := sqldb.InTx(ctx, p.db, func(tx *sql.Tx) error {
		for i, m := range msgs {
			if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
				res[i].redelivered = true
			}
			ev, err := DecodeMessage(m.Headers(), m.Data())
			if err == nil {
				if _, err = tx.ExecContext(ctx, "SAVEPOINT rung_project"); err != nil {
					return err
				}
				res[i].inserted, err = Project(ctx, tx, p.dialect, ev)
				if err == nil {
					_, err = tx.ExecContext(ctx, "RELEASE SAVEPOINT rung_project")
					if err != nil {
						return err
					}
					continue
				}
				if !errors.Is(err, events.ErrInvalid) && !errors.Is(err, ErrBadMessage) {
					return err
				}
				if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT rung_project"); rerr != nil {
					return rerr
				}
			}
			res[i].bad = true
			p.cfg.Logger.Error("projector terminated a message it cannot project", "subject", m.Subject(), "err", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("project %d events: %w", len(msgs), err)
	}
	if p.afterCommit != nil {
		p.afterCommit(len(msgs))
	}
	for i, m := range msgs {
		r := res[i]
		if r.redelivered {
			p.redelivered.Add(1)
		}
		switch {
		case r.bad:
			p.rejected.Add(1)
			_ = m.TermWithReason("rung projector: not a rung event")
			continue
		case r.inserted:
			p.projected.Add(1)
		default:
			p.absorbed.Add(1)
		}
		// A lost ack only means a redelivery, which the unique event_id absorbs.
		_ = m.Ack()
	}
	return nil
}

// DecodeMessage turns a relayed message (headers as the relay sets them, payload as
// data) back into the outbox Event. Errors wrap ErrBadMessage and name the header.
func DecodeMessage(h nats.Header, data []byte) (Event, error) {
	ev := Event{ID: h.Get(jetstream.MsgIDHeader), Name: h.Get(HeaderName), Key: h.Get(HeaderKey), Payload: data}
	v, err := strconv.Atoi(h.Get(HeaderVersion))
	if err != nil {
		return ev, fmt.Errorf("%w: header %s %q is not a number", ErrBadMessage, HeaderVersion, h.Get(HeaderVersion))
	}
	ev.Version = v
	if ev.OccurredAt, err = time.Parse(time.RFC3339Nano, h.Get(HeaderOccurredAt)); err != nil {
		return ev, fmt.Errorf("%w: header %s %q is not an RFC 3339 time", ErrBadMessage, HeaderOccurredAt, h.Get(HeaderOccurredAt))
	}
	if err := ev.Validate(); err != nil {
		return ev, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return ev, nil
}

// WriteMetrics writes the projector's counters in Prometheus text format.
func (p *Projector) WriteMetrics(w io.Writer) {
	metric(w, "rung_events_projected_total", "counter", "Events written into the events table.", float64(p.projected.Load()))
	metric(w, "rung_events_duplicates_absorbed_total", "counter", "Deliveries of an event_id the events table already held.", float64(p.absorbed.Load()))
	metric(w, "rung_projector_redeliveries_total", "counter", "Messages the consumer received more than once.", float64(p.redelivered.Load()))
	metric(w, "rung_projector_rejected_total", "counter", "Messages terminated because they are not a projectable event.", float64(p.rejected.Load()))
	metric(w, "rung_projector_batch_errors_total", "counter", "Batches that failed on the database and were left for redelivery.", float64(p.errs.Load()))
}
