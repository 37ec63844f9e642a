package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
)

// Message is one claimed outbox row on its way out.
type Message struct {
	Event
	Seq      int64 // the outbox row's id: its place in shipping order
	Attempts int   // failed shipping attempts so far
}

// Shipper delivers claimed rows. The relay has two: JetStream (the broker) and Direct
// (straight into the events table, for the embedded default with no broker).
//
// Ship is called with the relay's claim transaction tx still open: a shipper that writes
// to the same database uses tx so that the delivery and the mark commit together; one that
// delivers elsewhere ignores it. Ship delivers batch in order and sets errs[i] (len(errs)
// == len(batch), all nil on entry) for each message it could not deliver; an error that is
// not the message's fault wraps ErrUnavailable. Ship is called by one goroutine at a time
// per relay; batch and errs belong to the relay and must not be kept.
type Shipper interface {
	Ship(ctx context.Context, tx *sql.Tx, batch []Message, errs []error)
}

// RelayConfig holds the relay's knobs. Zero values take the defaults given.
type RelayConfig struct {
	BatchSize     int           // rows claimed per round; default 100
	MaxAttempts   int           // failures before a row moves to rung_outbox_dead; default 10
	RetryMin      time.Duration // first per-row retry delay, doubling per failure; default 1s
	RetryMax      time.Duration // cap on the per-row retry delay; default 5m
	PollInterval  time.Duration // wait when the outbox is empty; default 200ms
	OutageMax     time.Duration // cap on the whole-relay backoff while the broker is down; default 5s
	Retention     time.Duration // published rows are pruned after this; default 7 days, <0 keeps them
	PruneInterval time.Duration // how often to prune; default 1m
	PruneBatch    int           // rows deleted per prune statement; default 10000
	Logger        *slog.Logger  // default: discard
}

func (c *RelayConfig) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.PruneBatch == 0 {
		c.PruneBatch = 10000
	}
	def(&c.RetryMin, time.Second)
	def(&c.RetryMax, 5*time.Minute)
	def(&c.PollInterval, 200*time.Millisecond)
	def(&c.OutageMax, 5*time.Second)
	def(&c.Retention, 7*24*time.Hour)
	def(&c.PruneInterval, time.Minute)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate says which knob cannot work.
func (c *RelayConfig) Validate() error {
	switch {
	case c.BatchSize < 1 || c.BatchSize > 10000:
		return fmt.Errorf("%w: relay batch size %d, want 1–10000", ErrConfig, c.BatchSize)
	case c.MaxAttempts < 1:
		return fmt.Errorf("%w: relay max attempts %d, want ≥ 1", ErrConfig, c.MaxAttempts)
	case c.RetryMin <= 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("%w: relay retry delays %v..%v, want 0 < min ≤ max", ErrConfig, c.RetryMin, c.RetryMax)
	case c.PollInterval <= 0 || c.OutageMax <= 0 || c.PruneInterval <= 0:
		return fmt.Errorf("%w: relay intervals must be positive", ErrConfig)
	case c.PruneBatch < 1:
		return fmt.Errorf("%w: relay prune batch %d, want ≥ 1", ErrConfig, c.PruneBatch)
	}
	return nil
}

// Relay ships committed outbox rows through a Shipper and marks them published. Several
// relays may run against one PostgreSQL database at once; on SQLite run one.
//
// A Relay is driven by one goroutine (Run, or RunOnce in a loop); Notify, Stats and
// WriteMetrics may be called from any goroutine.
type Relay struct {
	db      *sql.DB
	dialect sqldb.Dialect
	ship    Shipper
	cfg     RelayConfig
	now     func() time.Time
	wake    chan struct{}

	// afterShip, when set (tests), runs between shipping and marking: the window where a
	// crash leaves delivered rows unmarked.
	afterShip func(batch []Message) error

	published, retried, dead, unavailable, pruned, roundErrors atomic.Int64
	depth, oldestMillis                                        atomic.Int64
	gaugesAt                                                   time.Time
	lastPrune                                                  time.Time
}

// NewRelay returns a relay over db shipping through s.
func NewRelay(db *sql.DB, d sqldb.Dialect, s Shipper, cfg RelayConfig) (*Relay, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if db == nil || s == nil {
		return nil, fmt.Errorf("%w: relay needs a database and a shipper", ErrConfig)
	}
	return &Relay{db: db, dialect: d, ship: s, cfg: cfg, now: time.Now, wake: make(chan struct{}, 1)}, nil
}

// Notify wakes the relay early, e.g. right after a transaction wrote an event. It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run ships until ctx is done, then returns nil once the round in flight has finished
// (a round cut short by ctx rolls back and its rows ship again later). It returns early
// only when the database is unusable for good, which it never decides: it logs and retries.
func (r *Relay) Run(ctx context.Context) error {
	outage := time.Duration(0)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-r.wake:
		}
		n, err := r.RunOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := r.cfg.PollInterval
		switch {
		case errors.Is(err, ErrUnavailable):
			if outage == 0 {
				r.cfg.Logger.Warn("broker unavailable; the outbox holds events until it is back", "err", err)
			}
			outage = min(max(2*outage, 50*time.Millisecond), r.cfg.OutageMax)
			wait = outage
		case err != nil:
			r.roundErrors.Add(1)
			r.cfg.Logger.Error("relay round failed", "err", err)
			outage = min(max(2*outage, 100*time.Millisecond), r.cfg.OutageMax)
			wait = outage
		default:
			if outage > 0 {
				r.cfg.Logger.Info("relay shipping again")
			}
			outage = 0
			if n == r.cfg.BatchSize {
				wait = 0
			}
		}
		if r.cfg.Retention >= 0 && r.now().Sub(r.lastPrune) >= r.cfg.PruneInterval {
			r.lastPrune = r.now()
			if _, err := r.Prune(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Error("prune published outbox rows", "err", err)
			}
		}
		if r.now().Sub(r.gaugesAt) >= time.Second || n > 0 {
			r.gaugesAt = r.now()
			if _, err := r.Stats(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn("read outbox depth", "err", err)
			}
		}
		timer.Reset(wait)
	}
}

func (r *Relay) claimSQL() string {
	q := `SELECT o.id, o.event_id, o.name, o.version, o.ordering_key, o.occurred_at, o.payload, o.attempts
FROM rung_outbox o
WHERE o.published_at IS NULL AND o.next_attempt_at <= ?
  AND NOT EXISTS (SELECT 1 FROM rung_outbox p
                  WHERE p.ordering_key = o.ordering_key AND p.published_at IS NULL AND p.id < o.id)
ORDER BY o.id
LIMIT ?`
	if r.dialect == sqldb.Postgres {
		// SKIP LOCKED lets relays share the table: each claims what no other holds.
		q += "\nFOR UPDATE OF o SKIP LOCKED"
	}
	return r.dialect.Rebind(q)
}

// RunOnce runs one round: claim up to BatchSize committed rows, ship them, and in the same
// transaction mark the delivered ones published, reschedule the failed ones and move those
// out of attempts to rung_outbox_dead. It returns how many rows were published. When the
// broker was unavailable for the whole batch it returns an error wrapping ErrUnavailable
// and leaves every row as it was.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("relay: begin claim: %w", err)
	}
	defer tx.Rollback()
	now := r.now()
	batch, err := r.claim(ctx, tx, now)
	if err != nil || len(batch) == 0 {
		return 0, err
	}
	errs := make([]error, len(batch))
	r.ship.Ship(ctx, tx, batch, errs)
	if r.afterShip != nil {
		if err := r.afterShip(batch); err != nil {
			return 0, err
		}
	}
	var ok []int64
	var unavailable error
	failed := 0
	for i, m := range batch {
		switch e := errs[i]; {
		case e == nil:
			ok = append(ok, m.Seq)
		case errors.Is(e, ErrUnavailable):
			unavailable = e
		default:
			failed++
			if err := r.fail(ctx, tx, m, e, now); err != nil {
				return 0, err
			}
		}
	}
	if err := r.markPublished(ctx, tx, ok, now); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("relay: commit %d published rows: %w", len(ok), err)
	}
	r.published.Add(int64(len(ok)))
	if unavailable != nil && len(ok) == 0 && failed == 0 {
		r.unavailable.Add(1)
		return 0, fmt.Errorf("relay: ship %d rows: %w", len(batch), unavailable)
	}
	return len(ok), nil
}

func (r *Relay) claim(ctx context.Context, tx *sql.Tx, now time.Time) ([]Message, error) {
	rows, err := tx.QueryContext(ctx, r.claimSQL(), r.dialect.Time(now), r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("relay: claim outbox rows: %w", err)
	}
	defer rows.Close()
	var batch []Message
	for rows.Next() {
		var m Message
		var occurred sqldb.Time
		var payload []byte
		if err := rows.Scan(&m.Seq, &m.ID, &m.Name, &m.Version, &m.Key, &occurred, &payload, &m.Attempts); err != nil {
			return nil, fmt.Errorf("relay: read claimed row: %w", err)
		}
		m.OccurredAt = occurred.Time
		m.Payload = payload
		batch = append(batch, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("relay: claim outbox rows: %w", err)
	}
	return batch, nil
}

func (r *Relay) markPublished(ctx context.Context, tx *sql.Tx, ids []int64, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, len(ids)+1)
	args = append(args, r.dialect.Time(now))
	for _, id := range ids {
		args = append(args, id)
	}
	q := `UPDATE rung_outbox SET published_at = ?, last_error = '' WHERE id IN (?` + strings.Repeat(", ?", len(ids)-1) + `)`
	if _, err := tx.ExecContext(ctx, r.dialect.Rebind(q), args...); err != nil {
		return fmt.Errorf("relay: mark %d rows published: %w", len(ids), err)
	}
	return nil
}

// fail records one failed attempt: reschedule with backoff, or dead-letter the row.
func (r *Relay) fail(ctx context.Context, tx *sql.Tx, m Message, cause error, now time.Time) error {
	msg := cause.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	attempts := m.Attempts + 1
	if attempts >= r.cfg.MaxAttempts {
		q := `INSERT INTO rung_outbox_dead (id, event_id, name, version, ordering_key, occurred_at, payload, created_at, attempts, last_error, dead_at)
SELECT id, event_id, name, version, ordering_key, occurred_at, payload, created_at, ?, ?, ? FROM rung_outbox WHERE id = ?`
		if _, err := tx.ExecContext(ctx, r.dialect.Rebind(q), attempts, msg, r.dialect.Time(now), m.Seq); err != nil {
			return fmt.Errorf("relay: dead-letter outbox row %d (%s): %w", m.Seq, m.ID, err)
		}
		if _, err := tx.ExecContext(ctx, r.dialect.Rebind(`DELETE FROM rung_outbox WHERE id = ?`), m.Seq); err != nil {
			return fmt.Errorf("relay: dead-letter outbox row %d (%s): %w", m.Seq, m.ID, err)
		}
		r.dead.Add(1)
		r.cfg.Logger.Error("outbox row dead-lettered", "event_id", m.ID, "name", m.Name, "attempts", attempts, "err", cause)
		return nil
	}
	next := r.dialect.Time(now.Add(r.retryDelay(attempts)))
	q := `UPDATE rung_outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?`
	if _, err := tx.ExecContext(ctx, r.dialect.Rebind(q), attempts, next, msg, m.Seq); err != nil {
		return fmt.Errorf("relay: reschedule outbox row %d (%s): %w", m.Seq, m.ID, err)
	}
	r.retried.Add(1)
	return nil
}

// retryDelay is RetryMin doubled per earlier failure, capped at RetryMax, with ±20% jitter
// so rows that failed together do not retry together.
func (r *Relay) retryDelay(attempts int) time.Duration {
	d := r.cfg.RetryMin
	for i := 1; i < attempts && d < r.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, r.cfg.RetryMax)
	return d - d/5 + rand.N(2*d/5+1)
}

// Prune deletes published rows older than the retention period and returns how many.
// The outbox is a queue, not a record: the events table keeps the events.
func (r *Relay) Prune(ctx context.Context) (int64, error) {
	if r.cfg.Retention < 0 {
		return 0, nil
	}
	cutoffAt := r.now().Add(-r.cfg.Retention)
	cutoff := r.dialect.Time(cutoffAt)
	q := r.dialect.Rebind(`DELETE FROM rung_outbox WHERE id IN (
	SELECT id FROM rung_outbox WHERE published_at IS NOT NULL AND published_at < ? LIMIT ?)`)
	var total int64
	for {
		res, err := r.db.ExecContext(ctx, q, cutoff, r.cfg.PruneBatch)
		if err != nil {
			return total, fmt.Errorf("prune outbox rows published before %s: %w", cutoffAt.UTC().Format(time.RFC3339), err)
		}
		n, _ := res.RowsAffected()
		total += n
		r.pruned.Add(n)
		if n < int64(r.cfg.PruneBatch) {
			return total, nil
		}
	}
}

// Stats is the outbox as it stands.
type Stats struct {
	Depth        int64         // unpublished rows
	OldestAge    time.Duration // age of the oldest unpublished row; 0 when none
	DeadLettered int64         // rows in rung_outbox_dead
}

// Stats reads the outbox's depth and the age of its oldest unpublished row, and refreshes
// the gauges WriteMetrics reports.
func (r *Relay) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	var depth int64
	var oldest sqldb.Time
	if err := r.db.QueryRowContext(ctx, `SELECT count(*), min(created_at) FROM rung_outbox WHERE published_at IS NULL`).Scan(&depth, &oldest); err != nil {
		return s, fmt.Errorf("read outbox depth: %w", err)
	}
	if err := r.db.QueryRowContext(ctx, `SELECT count(*) FROM rung_outbox_dead`).Scan(&s.DeadLettered); err != nil {
		return s, fmt.Errorf("count dead-lettered outbox rows: %w", err)
	}
	s.Depth = depth
	r.depth.Store(depth)
	if !oldest.IsZero() && depth > 0 {
		r.oldestMillis.Store(oldest.UnixMilli())
		s.OldestAge = max(r.now().Sub(oldest.Time), 0)
	} else {
		r.oldestMillis.Store(0)
	}
	return s, nil
}

// WriteMetrics writes the relay's metrics in Prometheus text format. The depth gauges are
// as of the last round (at most about a second old while the relay runs).
func (r *Relay) WriteMetrics(w io.Writer) {
	age := 0.0
	if o := r.oldestMillis.Load(); o > 0 && r.depth.Load() > 0 {
		age = max(r.now().Sub(time.UnixMilli(o)).Seconds(), 0)
	}
	metric(w, "rung_outbox_depth", "gauge", "Outbox rows not yet published.", float64(r.depth.Load()))
	metric(w, "rung_outbox_oldest_unpublished_age_seconds", "gauge", "Age of the oldest unpublished outbox row.", age)
	metric(w, "rung_outbox_published_total", "counter", "Outbox rows shipped and marked published.", float64(r.published.Load()))
	metric(w, "rung_outbox_retried_total", "counter", "Outbox rows whose shipping failed and was rescheduled.", float64(r.retried.Load()))
	metric(w, "rung_outbox_dead_lettered_total", "counter", "Outbox rows moved to rung_outbox_dead after too many failures.", float64(r.dead.Load()))
	metric(w, "rung_outbox_pruned_total", "counter", "Published outbox rows deleted after the retention period.", float64(r.pruned.Load()))
	metric(w, "rung_outbox_broker_unavailable_total", "counter", "Relay rounds in which the broker took none of the batch.", float64(r.unavailable.Load()))
	metric(w, "rung_outbox_round_errors_total", "counter", "Relay rounds that failed on the database.", float64(r.roundErrors.Load()))
	if mw, ok := r.ship.(interface{ WriteMetrics(io.Writer) }); ok {
		mw.WriteMetrics(w)
	}
}

// metric writes one unlabelled sample with its HELP and TYPE lines.
func metric(w io.Writer, name, typ, help string, v float64) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %g\n", name, help, name, typ, name, v)
}
