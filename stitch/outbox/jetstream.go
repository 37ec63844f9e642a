package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers the relay sets on every message; the payload is the event's JSON as frozen.
const (
	HeaderName       = "Rung-Event"       // event name
	HeaderVersion    = "Rung-Version"     // payload schema version
	HeaderKey        = "Rung-Key"         // ordering key (subject_id in the events table)
	HeaderOccurredAt = "Rung-Occurred-At" // RFC 3339 with nanoseconds
	// The event_id travels as jetstream.MsgIDHeader (Nats-Msg-Id), the broker's dedup key.
)

// BrokerConfig says where events live in JetStream.
type BrokerConfig struct {
	Stream        string // stream name; default "RUNG_EVENTS"
	SubjectPrefix string // an event named n is published on <prefix>.<n>; default "rung.events"
	// DuplicateWindow is the stream's dedup window when rung creates it; default 2m.
	// Beyond it, a re-published event reaches the stream again and the events table's
	// unique event_id absorbs it.
	DuplicateWindow time.Duration
	PublishTimeout  time.Duration // wait for a batch's acks; default 5s
}

func (c *BrokerConfig) setDefaults() {
	if c.Stream == "" {
		c.Stream = "RUNG_EVENTS"
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = "rung.events"
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = 2 * time.Minute
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Second
	}
}

// Validate says which setting cannot work.
func (c *BrokerConfig) Validate() error {
	switch {
	case !validToken(c.Stream, false):
		return fmt.Errorf("%w: stream name %q must be letters, digits, _ or -", ErrConfig, c.Stream)
	case !validSubjectPrefix(c.SubjectPrefix):
		return fmt.Errorf("%w: subject prefix %q must be dot-separated tokens without wildcards or spaces", ErrConfig, c.SubjectPrefix)
	case c.DuplicateWindow < 0 || c.PublishTimeout <= 0:
		return fmt.Errorf("%w: duplicate window and publish timeout must be positive", ErrConfig)
	}
	return nil
}

// Subjects is the filter that covers every event subject.
func (c *BrokerConfig) Subjects() string { return c.SubjectPrefix + ".>" }

func validToken(s string, dots bool) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || dots && c == '.') {
			return false
		}
	}
	return true
}

func validSubjectPrefix(s string) bool {
	if !validToken(s, true) || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] == '.' && s[i-1] == '.' {
			return false
		}
	}
	return true
}

// Connect dials NATS for the relay and the projector: it keeps reconnecting for ever
// (a broker outage is a wait, not a failure) and returns even when the server is not up
// yet. opts come after rung's own and so override them (a connection's name, say).
func Connect(url string, log *slog.Logger, opts ...nats.Option) (*nats.Conn, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name("rung relay"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
	}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", url, err)
	}
	return nc, nil
}

// EnsureStream creates cfg's stream when it is absent, and adds the event subjects to an
// existing stream that does not carry them. An existing stream's other settings are left
// as its operator set them.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg BrokerConfig) (jetstream.Stream, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := js.Stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        cfg.Stream,
			Description: "rung business events, relayed from the outbox",
			Subjects:    []string{cfg.Subjects()},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  cfg.DuplicateWindow,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = js.Stream(ctx, cfg.Stream) // another relay created it first
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", cfg.Stream, err)
	}
	sc := s.CachedInfo().Config
	if !slices.Contains(sc.Subjects, cfg.Subjects()) {
		sc.Subjects = append(sc.Subjects, cfg.Subjects())
		if s, err = js.UpdateStream(ctx, sc); err != nil {
			return nil, fmt.Errorf("add subjects %s to stream %s: %w", cfg.Subjects(), cfg.Stream, err)
		}
	}
	return s, nil
}

// JetStream ships outbox rows to a NATS JetStream stream, Nats-Msg-Id = event_id, so
// that a row shipped twice within the stream's duplicate window is stored once. It
// creates the stream on first use. Safe for use by one relay at a time.
type JetStream struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     BrokerConfig
	ensured atomic.Bool

	stored, duplicates, failed atomic.Int64
}

var _ Shipper = (*JetStream)(nil)

// NewJetStream returns a shipper publishing through nc, which the caller owns and closes.
func NewJetStream(nc *nats.Conn, cfg BrokerConfig) (*JetStream, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &JetStream{nc: nc, js: js, cfg: cfg}, nil
}

// Ship publishes the batch asynchronously, in order, and waits up to PublishTimeout for
// the acks. A message the stream refused for its own reasons (too large, say) fails
// alone; everything else — no connection, no stream answering, no ack in time — wraps
// ErrUnavailable. A timed-out message may still have been stored: it ships again and
// the duplicate is absorbed downstream.
func (j *JetStream) Ship(ctx context.Context, _ *sql.Tx, batch []Message, errs []error) {
	fill := func(from int, err error) {
		for i := from; i < len(batch); i++ {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	if st := j.nc.Status(); st != nats.CONNECTED {
		fill(0, fmt.Errorf("%w: nats connection is %s", ErrUnavailable, st))
		return
	}
	if !j.ensured.Load() {
		if _, err := EnsureStream(ctx, j.js, j.cfg); err != nil {
			fill(0, fmt.Errorf("%w: %w", ErrUnavailable, err))
			return
		}
		j.ensured.Store(true)
	}
	futures := make([]jetstream.PubAckFuture, len(batch))
	for i := range batch {
		m := &batch[i]
		msg := &nats.Msg{Subject: j.cfg.SubjectPrefix + "." + m.Name, Data: m.Payload, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, m.ID)
		msg.Header.Set(HeaderName, m.Name)
		msg.Header.Set(HeaderVersion, strconv.Itoa(m.version()))
		msg.Header.Set(HeaderKey, m.Key)
		msg.Header.Set(HeaderOccurredAt, m.OccurredAt.UTC().Format(time.RFC3339Nano))
		f, err := j.js.PublishMsgAsync(msg)
		if err != nil {
			errs[i] = j.classify(m, err)
			continue
		}
		futures[i] = f
	}
	timer := time.NewTimer(j.cfg.PublishTimeout)
	defer timer.Stop()
	for i, f := range futures {
		if f == nil || errs[i] != nil {
			continue
		}
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				j.duplicates.Add(1)
			} else {
				j.stored.Add(1)
			}
		case err := <-f.Err():
			errs[i] = j.classify(&batch[i], err)
		case <-timer.C:
			fill(i, fmt.Errorf("%w: no ack from stream %s within %v", ErrUnavailable, j.cfg.Stream, j.cfg.PublishTimeout))
			return
		case <-ctx.Done():
			fill(i, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err()))
			return
		}
	}
}

func (j *JetStream) classify(m *Message, err error) error {
	var api *jetstream.APIError
	if errors.As(err, &api) && api.Code != 503 || errors.Is(err, nats.ErrMaxPayload) {
		j.failed.Add(1)
		return fmt.Errorf("publish %s %s: %w", m.Name, m.ID, err)
	}
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		j.ensured.Store(false) // the stream may have been deleted: make it again
	}
	return fmt.Errorf("%w: publish %s %s: %w", ErrUnavailable, m.Name, m.ID, err)
}

// WriteMetrics writes the publishing counters in Prometheus text format.
func (j *JetStream) WriteMetrics(w io.Writer) {
	metric(w, "rung_outbox_broker_stored_total", "counter", "Events the stream stored as new.", float64(j.stored.Load()))
	metric(w, "rung_outbox_duplicate_publishes_total", "counter", "Re-published events the stream's duplicate window recognised (Nats-Msg-Id) and dropped.", float64(j.duplicates.Load()))
	metric(w, "rung_outbox_publish_rejected_total", "counter", "Events the stream refused for the message's own sake.", float64(j.failed.Load()))
}
