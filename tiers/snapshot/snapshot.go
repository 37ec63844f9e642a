// Package snapshot is Tier 3 of the ladder, "periodic snapshot": a scheduled job samples
// declared metrics from current state and writes them to a history table keyed by
// as_of, so that levels over time survive the deletes and edits that Tier 1 cannot see
// past. It owns the history table, the job (Run, and Loop, which schedules it), the
// detection of missed runs with a backfill of whatever can be reconstructed, and the
// series query.
//
// What this tier cannot do: the cadence fixes the granularity forever (daily means no
// hourly), and it records levels, not flow: 3 contacts created and 2 deleted between two
// runs show as +1, and the 3 and the 2 are gone. A missed run can only be backfilled
// for a metric that declares how to reconstruct its past (AsOf) from data that keeps
// it, such as an append-only table; the others stay a hole.
package snapshot

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/tiers/live"
)

// Metric is one value sampled on every run.
type Metric struct {
	Name string
	// Live samples the current value.
	Live live.Query
	// AsOf, when set, reconstructs the value at a past instant, which makes a missed run
	// of this metric backfillable. Leave it nil when the source of truth does not keep
	// the past (a table rows are deleted from): guessing would be worse than a gap.
	AsOf func(ctx context.Context, q sqldb.Querier, d sqldb.Dialect, at time.Time) (float64, error)
}

// Job writes its Metrics into Table once per Every. A slot is a multiple of Every
// (UTC), so a daily job's as_of is midnight. Fields are set once before use.
type Job struct {
	DB      *sql.DB
	Dialect sqldb.Dialect
	Table   string        // e.g. "daily_metrics"
	Every   time.Duration // the cadence; 24h for a nightly job
	Metrics []Metric
	// Offset delays each scheduled run past its slot start (the ladder's "00:05").
	Offset time.Duration
	Now    func() time.Time // time.Now when nil
	Log    *slog.Logger     // slog.Default() when nil
}

// Point is one value of a series.
type Point struct {
	AsOf       time.Time
	Value      float64
	Backfilled bool // reconstructed after a missed run rather than sampled on time
}

// Gap is a slot in which some metrics have no value.
type Gap struct {
	AsOf    time.Time
	Metrics []string
}

func (j *Job) check() error {
	if j.DB == nil {
		return fmt.Errorf("%w: no database", ErrDecl)
	}
	if err := j.Dialect.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrDecl, err)
	}
	if err := sqldb.Ident(j.Table); err != nil {
		return fmt.Errorf("%w: table: %w", ErrDecl, err)
	}
	if j.Every < time.Millisecond {
		return fmt.Errorf("%w %s: cadence %v is below 1ms", ErrDecl, j.Table, j.Every)
	}
	if len(j.Metrics) == 0 {
		return fmt.Errorf("%w %s: no metrics", ErrDecl, j.Table)
	}
	seen := map[string]bool{}
	for _, m := range j.Metrics {
		if m.Name == "" || seen[m.Name] {
			return fmt.Errorf("%w %s: metric name %q is empty or repeated", ErrDecl, j.Table, m.Name)
		}
		seen[m.Name] = true
		if _, _, err := m.Live.SQL(j.Dialect); err != nil {
			return fmt.Errorf("%w %s: metric %s: %w", ErrDecl, j.Table, m.Name, err)
		}
	}
	return nil
}

func (j *Job) now() time.Time {
	if j.Now != nil {
		return j.Now()
	}
	return time.Now()
}

func (j *Job) log() *slog.Logger {
	if j.Log != nil {
		return j.Log
	}
	return slog.Default()
}

// Slot is the as_of of the run that covers t.
func (j *Job) Slot(t time.Time) time.Time {
	return t.UTC().Truncate(j.Every)
}

// Migrate creates the history table if absent: one row per (as_of, metric).
func (j *Job) Migrate(ctx context.Context) error {
	if err := j.check(); err != nil {
		return err
	}
	ts := j.Dialect.TimeType()
	_, err := j.DB.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+j.Table+` (
	as_of      `+ts+` NOT NULL,
	metric     TEXT NOT NULL,
	value      `+j.Dialect.FloatType()+` NOT NULL,
	taken_at   `+ts+` NOT NULL,
	backfilled INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (as_of, metric)
)`)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", j.Table, err)
	}
	return nil
}

// Run samples every metric now and upserts the values at the slot of at. All metrics
// are read in one transaction (REPEATABLE READ on PostgreSQL), so they describe the same
// moment. Running a slot twice keeps the later values.
func (j *Job) Run(ctx context.Context, at time.Time) error {
	if err := j.check(); err != nil {
		return err
	}
	slot := j.Slot(at)
	tx, err := j.DB.BeginTx(ctx, j.txOptions())
	if err != nil {
		return fmt.Errorf("snapshot %s at %s: begin: %w", j.Table, slot.Format(time.RFC3339), err)
	}
	defer tx.Rollback()
	for _, m := range j.Metrics {
		v, err := m.Live.Run(ctx, tx, j.Dialect)
		if err != nil {
			return fmt.Errorf("snapshot %s at %s: metric %s: %w", j.Table, slot.Format(time.RFC3339), m.Name, err)
		}
		if err := j.upsert(ctx, tx, slot, m.Name, v, false); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("snapshot %s at %s: commit: %w", j.Table, slot.Format(time.RFC3339), err)
	}
	return nil
}

func (j *Job) txOptions() *sql.TxOptions {
	if j.Dialect == sqldb.Postgres {
		return &sql.TxOptions{Isolation: sql.LevelRepeatableRead}
	}
	return nil
}

func (j *Job) upsert(ctx context.Context, tx sqldb.Execer, slot time.Time, metric string, v float64, backfilled bool) error {
	bf := 0
	if backfilled {
		bf = 1
	}
	d := j.Dialect
	_, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO `+j.Table+` (as_of, metric, value, taken_at, backfilled) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (as_of, metric) DO UPDATE SET value = excluded.value, taken_at = excluded.taken_at, backfilled = excluded.backfilled`),
		d.Time(slot), metric, v, d.Time(j.now()), bf)
	if err != nil {
		return fmt.Errorf("snapshot %s at %s: write %s: %w", j.Table, slot.Format(time.RFC3339), metric, err)
	}
	return nil
}

// Missed lists the slots from from to to (both included) in which some metric has no
// value: runs that failed or never happened.
func (j *Job) Missed(ctx context.Context, from, to time.Time) ([]Gap, error) {
	if err := j.check(); err != nil {
		return nil, err
	}
	first, last := j.Slot(from), j.Slot(to)
	if last.Before(first) {
		return nil, nil
	}
	d := j.Dialect
	rows, err := j.DB.QueryContext(ctx, d.Rebind(`SELECT as_of, metric FROM `+j.Table+` WHERE as_of >= ? AND as_of <= ?`),
		d.Time(first), d.Time(last))
	if err != nil {
		return nil, fmt.Errorf("find missed runs of %s: %w", j.Table, err)
	}
	defer rows.Close()
	type k struct {
		at     int64
		metric string
	}
	have := map[k]bool{}
	for rows.Next() {
		var at sqldb.Time
		var m string
		if err := rows.Scan(&at, &m); err != nil {
			return nil, fmt.Errorf("find missed runs of %s: %w", j.Table, err)
		}
		have[k{at.UnixMicro(), m}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find missed runs of %s: %w", j.Table, err)
	}
	var gaps []Gap
	for s := first; !s.After(last); s = s.Add(j.Every) {
		var missing []string
		for _, m := range j.Metrics {
			if !have[k{s.UnixMicro(), m.Name}] {
				missing = append(missing, m.Name)
			}
		}
		if len(missing) > 0 {
			gaps = append(gaps, Gap{AsOf: s, Metrics: missing})
		}
	}
	return gaps, nil
}

// Report says what a Backfill did.
type Report struct {
	Filled []Gap // values reconstructed with the metric's AsOf
	Holes  []Gap // values that cannot be reconstructed and stay missing
}

// Backfill fills the slots Missed finds between from and to, for the metrics that
// declare AsOf, and reports the rest as holes. Filled values are flagged backfilled.
func (j *Job) Backfill(ctx context.Context, from, to time.Time) (Report, error) {
	gaps, err := j.Missed(ctx, from, to)
	if err != nil {
		return Report{}, err
	}
	byName := map[string]Metric{}
	for _, m := range j.Metrics {
		byName[m.Name] = m
	}
	var rep Report
	for _, g := range gaps {
		filled, holes := Gap{AsOf: g.AsOf}, Gap{AsOf: g.AsOf}
		err := sqldb.InTx(ctx, j.DB, func(tx *sql.Tx) error {
			for _, name := range g.Metrics {
				m := byName[name]
				if m.AsOf == nil {
					holes.Metrics = append(holes.Metrics, name)
					continue
				}
				v, err := m.AsOf(ctx, tx, j.Dialect, g.AsOf)
				if err != nil {
					return fmt.Errorf("backfill %s at %s: metric %s: %w", j.Table, g.AsOf.Format(time.RFC3339), name, err)
				}
				if err := j.upsert(ctx, tx, g.AsOf, name, v, true); err != nil {
					return err
				}
				filled.Metrics = append(filled.Metrics, name)
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
		if len(filled.Metrics) > 0 {
			rep.Filled = append(rep.Filled, filled)
		}
		if len(holes.Metrics) > 0 {
			rep.Holes = append(rep.Holes, holes)
		}
	}
	return rep, nil
}

// Series returns metric's points with from <= as_of <= to, in time order.
func (j *Job) Series(ctx context.Context, metric string, from, to time.Time) ([]Point, error) {
	if err := j.check(); err != nil {
		return nil, err
	}
	d := j.Dialect
	rows, err := j.DB.QueryContext(ctx, d.Rebind(`SELECT as_of, value, backfilled FROM `+j.Table+`
WHERE metric = ? AND as_of >= ? AND as_of <= ? ORDER BY as_of`), metric, d.Time(from), d.Time(to))
	if err != nil {
		return nil, fmt.Errorf("series %s of %s: %w", metric, j.Table, err)
	}
	defer rows.Close()
	var out []Point
	for rows.Next() {
		var p Point
		var at sqldb.Time
		var bf int
		if err := rows.Scan(&at, &p.Value, &bf); err != nil {
			return nil, fmt.Errorf("series %s of %s: %w", metric, j.Table, err)
		}
		p.AsOf, p.Backfilled = at.Time, bf != 0
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("series %s of %s: %w", metric, j.Table, err)
	}
	return out, nil
}

// CatchUp runs the job for the slot of now, after backfilling every slot missed since
// the last one recorded (at most max slots back, so that a long outage does not turn
// into an unbounded loop). It returns the backfill report.
func (j *Job) CatchUp(ctx context.Context, max int) (Report, error) {
	if err := j.check(); err != nil {
		return Report{}, err
	}
	now := j.Slot(j.now())
	var last sqldb.Time
	if err := j.DB.QueryRowContext(ctx, `SELECT max(as_of) FROM `+j.Table).Scan(&last); err != nil {
		return Report{}, fmt.Errorf("catch up %s: last run: %w", j.Table, err)
	}
	var rep Report
	if !last.IsZero() && last.Before(now) {
		from := last.Add(j.Every)
		if earliest := now.Add(-time.Duration(max) * j.Every); from.Before(earliest) {
			from = earliest
		}
		var err error
		if rep, err = j.Backfill(ctx, from, now.Add(-j.Every)); err != nil {
			return rep, err
		}
	}
	return rep, j.Run(ctx, now)
}

// Loop is the scheduler: it catches up once at start, then runs at every slot start
// plus Offset, until ctx is done. It blocks; the caller owns the goroutine it runs in,
// and it returns nil once ctx is cancelled (after the run in progress, if any, which
// sees the cancelled ctx). A failed run is logged, not fatal: the next tick's catch-up
// backfills it where it can.
func (j *Job) Loop(ctx context.Context) error {
	if err := j.check(); err != nil {
		return err
	}
	const maxCatchUp = 366
	tick := func() {
		rep, err := j.CatchUp(ctx, maxCatchUp)
		if err != nil && ctx.Err() == nil {
			j.log().Error("snapshot run failed", "table", j.Table, "err", err)
		}
		for _, h := range rep.Holes {
			j.log().Warn("snapshot missed a run that cannot be backfilled", "table", j.Table,
				"as_of", h.AsOf, "metrics", h.Metrics)
		}
	}
	tick()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		now := j.now()
		next := j.Slot(now).Add(j.Every + j.Offset)
		if off := j.Slot(now).Add(j.Offset); off.After(now) {
			next = off
		}
		timer.Reset(next.Sub(now))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			tick()
		}
	}
}
