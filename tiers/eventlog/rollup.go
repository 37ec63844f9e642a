package eventlog

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
)

// Rollup declares an aggregate of one event over time: how many and how much, per
// period and per value of one promoted column. Its table has one row per
// (period, dim): period is the bucket label ("2026-03" for a month), dim the promoted
// value ("" when By is empty), events the count and amount the sum of amount.
type Rollup struct {
	Table  string       // e.g. "sales_rollups"
	Event  string       // the event name it counts, e.g. "deal_closed"
	Bucket sqldb.Bucket // hour, day or month of occurred_at (UTC)
	By     string       // a promoted column (see events.Promotable), or "" for one total
}

// Row is one group of a rollup.
type Row struct {
	Period string
	Dim    string
	Events int64
	Amount float64
}

// Diff is one group where a rollup table disagrees with its events. Missing or
// extra groups have a zero Row on the side that lacks them.
type Diff struct {
	Period, Dim string
	Table       Row // what the rollup table holds
	Events      Row // what the events say
}

func (d Diff) String() string {
	return fmt.Sprintf("%s/%q: table %d events %.2f, events table says %d events %.2f",
		d.Period, d.Dim, d.Table.Events, d.Table.Amount, d.Events.Events, d.Events.Amount)
}

func (r Rollup) check() error {
	if err := sqldb.Ident(r.Table); err != nil {
		return fmt.Errorf("%w: table: %w", ErrRollup, err)
	}
	if err := sqldb.Ident(r.Event); err != nil {
		return fmt.Errorf("%w %s: event: %w", ErrRollup, r.Table, err)
	}
	if err := r.Bucket.Validate(); err != nil {
		return fmt.Errorf("%w %s: %w", ErrRollup, r.Table, err)
	}
	if r.By != "" && (!slices.Contains(events.Promotable, r.By) || r.By == "amount") {
		return fmt.Errorf("%w %s: cannot group by %q", ErrRollup, r.Table, r.By)
	}
	return nil
}

// Migrate creates the rollup's table if absent.
func (r Rollup) Migrate(ctx context.Context, db sqldb.Execer, d sqldb.Dialect) error {
	if err := r.check(); err != nil {
		return err
	}
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+r.Table+` (
	period TEXT NOT NULL,
	dim    TEXT NOT NULL,
	events BIGINT NOT NULL,
	amount `+d.FloatType()+` NOT NULL,
	PRIMARY KEY (period, dim)
)`)
	if err != nil {
		return fmt.Errorf("migrate rollup %s: %w", r.Table, err)
	}
	return nil
}

func (r Rollup) dim(e events.Event) string {
	switch r.By {
	case "subject_id":
		return e.SubjectID
	case "source":
		return e.Source
	case "medium":
		return e.Medium
	case "campaign":
		return e.Campaign
	case "landing_page":
		return e.LandingPage
	case "variant":
		return e.Variant
	}
	return ""
}

// Add is the incremental path: it adds one newly inserted event to its group, through
// the caller's transaction. Events of other names are ignored. Call it only when Insert
// reported inserted=true (Log.Emit does), or a redelivered event counts twice — which
// Reconcile would then report.
func (r Rollup) Add(ctx context.Context, tx sqldb.Execer, d sqldb.Dialect, e events.Event) error {
	if e.Name != r.Event {
		return nil
	}
	if err := r.check(); err != nil {
		return err
	}
	var amount float64
	if e.Amount != nil {
		amount = *e.Amount
	}
	q := d.Rebind(`INSERT INTO ` + r.Table + ` (period, dim, events, amount) VALUES (?, ?, 1, ?)
ON CONFLICT (period, dim) DO UPDATE SET events = ` + r.Table + `.events + 1, amount = ` + r.Table + `.amount + excluded.amount`)
	if _, err := tx.ExecContext(ctx, q, r.Bucket.Label(e.OccurredAt), r.dim(e), amount); err != nil {
		return fmt.Errorf("add event %s to rollup %s: %w", e.ID, r.Table, err)
	}
	return nil
}

// FromEvents computes the rollup from the events table without writing anything.
func (r Rollup) FromEvents(ctx context.Context, q sqldb.Querier, d sqldb.Dialect) ([]Row, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	dim := "''"
	if r.By != "" {
		dim = r.By
	}
	return scanRows(q.QueryContext(ctx, d.Rebind(`SELECT `+d.Period(r.Bucket, "occurred_at")+`, `+dim+`,
	count(*), coalesce(sum(amount), 0)
FROM events WHERE name = ? GROUP BY 1, 2 ORDER BY 1, 2`), r.Event))
}

// Read returns the rollup table's rows in (period, dim) order.
func (r Rollup) Read(ctx context.Context, q sqldb.Querier) ([]Row, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	return scanRows(q.QueryContext(ctx, `SELECT period, dim, events, amount FROM `+r.Table+` ORDER BY period, dim`))
}

func scanRows(rows *sql.Rows, err error) ([]Row, error) {
	if err != nil {
		return nil, fmt.Errorf("read rollup: %w", err)
	}
	defer rows.Close()
	var out []Row
	for rows.Next() {
		var x Row
		if err := rows.Scan(&x.Period, &x.Dim, &x.Events, &x.Amount); err != nil {
			return nil, fmt.Errorf("read rollup: scan: %w", err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read rollup: %w", err)
	}
	return out, nil
}

// Reconcile rebuilds the rollup from the events and diffs it against the table: every
// group that is missing, extra or different is one Diff. No diffs means the incremental
// path is correct; any diff is a caught bug. It writes nothing.
func (r Rollup) Reconcile(ctx context.Context, q sqldb.Querier, d sqldb.Dialect) ([]Diff, error) {
	want, err := r.FromEvents(ctx, q, d)
	if err != nil {
		return nil, fmt.Errorf("reconcile %s: %w", r.Table, err)
	}
	have, err := r.Read(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("reconcile %s: %w", r.Table, err)
	}
	return diff(have, want), nil
}

func diff(have, want []Row) []Diff {
	type gk struct{ p, d string }
	h := make(map[gk]Row, len(have))
	for _, x := range have {
		h[gk{x.Period, x.Dim}] = x
	}
	var out []Diff
	for _, w := range want {
		k := gk{w.Period, w.Dim}
		x, ok := h[k]
		delete(h, k)
		if !ok || x.Events != w.Events || !same(x.Amount, w.Amount) {
			out = append(out, Diff{Period: w.Period, Dim: w.Dim, Table: x, Events: w})
		}
	}
	for k, x := range h {
		out = append(out, Diff{Period: k.p, Dim: k.d, Table: x})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Period != out[j].Period {
			return out[i].Period < out[j].Period
		}
		return out[i].Dim < out[j].Dim
	})
	return out
}

// same compares sums that may have been added up in a different order.
func same(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// Recompute rebuilds the rollup table from the events, in one transaction, and returns
// the groups it had to change (the same list Reconcile would have reported). It is
// idempotent: run again with no new events, it changes nothing and returns no diffs.
func (r Rollup) Recompute(ctx context.Context, db *sql.DB, d sqldb.Dialect) ([]Diff, error) {
	var diffs []Diff
	err := sqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		var err error
		if diffs, err = r.Reconcile(ctx, tx, d); err != nil {
			return err
		}
		for _, x := range diffs {
			if x.Events.Events == 0 {
				_, err = tx.ExecContext(ctx, d.Rebind(`DELETE FROM `+r.Table+` WHERE period = ? AND dim = ?`), x.Period, x.Dim)
			} else {
				_, err = tx.ExecContext(ctx, d.Rebind(`INSERT INTO `+r.Table+` (period, dim, events, amount) VALUES (?, ?, ?, ?)
ON CONFLICT (period, dim) DO UPDATE SET events = excluded.events, amount = excluded.amount`),
					x.Period, x.Dim, x.Events.Events, x.Events.Amount)
			}
			if err != nil {
				return fmt.Errorf("recompute %s %s/%q: %w", r.Table, x.Period, x.Dim, err)
			}
		}
		return nil
	})
	return diffs, err
}
