package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/rungdev/rung/stitch/sqldb"
)

// Direct ships outbox rows straight into the events table in the same database, inside
// the relay's claim transaction: the event is projected and its row marked published in
// one commit, so there is no window for a duplicate at all. It is the embedded default,
// with no broker. Safe for use by one relay at a time.
type Direct struct {
	dialect             sqldb.Dialect
	projected, absorbed atomic.Int64
}

var _ Shipper = (*Direct)(nil)

// NewDirect returns a shipper that projects into the events table of the relay's database.
func NewDirect(d sqldb.Dialect) *Direct { return &Direct{dialect: d} }

// Ship projects the whole batch under one savepoint; only if some event fails does it go
// again one savepoint per event, so that a bad event fails alone and the rest ship.
func (s *Direct) Ship(ctx context.Context, tx *sql.Tx, batch []Message, errs []error) {
	inserted := make([]bool, len(batch))
	if _, err := tx.ExecContext(ctx, "SAVEPOINT rung_batch"); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("project %s: savepoint: %w", batch[i].ID, err)
		}
		return
	}
	whole := true
	for i := range batch {
		ok, err := Project(ctx, tx, s.dialect, batch[i].Event)
		if err != nil {
			whole = false
			break
		}
		inserted[i] = ok
	}
	if whole {
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT rung_batch"); err != nil {
			for i := range errs {
				errs[i] = fmt.Errorf("project %s: release savepoint: %w", batch[i].ID, err)
			}
			return
		}
		s.count(inserted, errs)
		return
	}
	if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT rung_batch"); err != nil {
		for i := range errs {
			errs[i] = fmt.Errorf("project %s: roll back the batch: %w", batch[i].ID, err)
		}
		return
	}
	for i := range batch {
		inserted[i], errs[i] = s.one(ctx, tx, batch[i])
	}
	s.count(inserted, errs)
}

func (s *Direct) one(ctx context.Context, tx *sql.Tx, m Message) (bool, error) {
	if _, err := tx.ExecContext(ctx, "SAVEPOINT rung_ship"); err != nil {
		return false, fmt.Errorf("project %s: savepoint: %w", m.ID, err)
	}
	inserted, err := Project(ctx, tx, s.dialect, m.Event)
	if err != nil {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT rung_ship"); rerr != nil {
			return false, fmt.Errorf("%w (and rolling back its savepoint: %v)", err, rerr)
		}
		return false, err
	}
	if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT rung_ship"); err != nil {
		return false, fmt.Errorf("project %s: release savepoint: %w", m.ID, err)
	}
	return inserted, nil
}

func (s *Direct) count(inserted []bool, errs []error) {
	for i, ok := range inserted {
		switch {
		case errs[i] != nil:
		case ok:
			s.projected.Add(1)
		default:
			s.absorbed.Add(1)
		}
	}
}

// WriteMetrics writes the projection counters in Prometheus text format. Counts include
// rounds whose commit later failed; those rows ship again.
func (s *Direct) WriteMetrics(w io.Writer) {
	metric(w, "rung_events_projected_total", "counter", "Events written into the events table.", float64(s.projected.Load()))
	metric(w, "rung_events_duplicates_absorbed_total", "counter", "Deliveries of an event_id the events table already held.", float64(s.absorbed.Load()))
}
