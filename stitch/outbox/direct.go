package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/rungdev/rung/tiers/sqldb"
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

// Ship projects each message under a savepoint, so that one bad event fails alone.
func (s *Direct) Ship(ctx context.Context, tx *sql.Tx, batch []Message, errs []error) {
	for i := range batch {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT rung_ship"); err != nil {
			errs[i] = fmt.Errorf("project %s: savepoint: %w", batch[i].ID, err)
			continue
		}
		inserted, err := Project(ctx, tx, s.dialect, batch[i].Event)
		if err != nil {
			errs[i] = err
			if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT rung_ship"); rerr != nil {
				errs[i] = fmt.Errorf("%w (and rolling back its savepoint: %v)", err, rerr)
			}
			continue
		}
		if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT rung_ship"); err != nil {
			errs[i] = fmt.Errorf("project %s: release savepoint: %w", batch[i].ID, err)
			continue
		}
		if inserted {
			s.projected.Add(1)
		} else {
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
