package eventlog_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
	"github.com/rungdev/rung/tiers/eventlog"
)

// BenchmarkEventlog: the write is one deal_closed emitted in its own transaction —
// schema validation, the events row and the incremental rollup; the reads are the
// rollup table (what dashboards read), and the recompute and reconcile over 10k events
// (what the nightly auditor pays).
func BenchmarkEventlog(b *testing.B) {
	ctx := context.Background()
	sales := eventlog.Rollup{Table: "sales_rollups", Event: "deal_closed", Bucket: sqldb.Month, By: "source"}
	sources := []string{"ads", "seo", "webinar", "referral"}
	for _, s := range sqltest.Backends(b) {
		s := s
		defs, err := eventlog.Ladder()
		if err != nil {
			b.Fatal(err)
		}
		if err := events.Migrate(ctx, s.DB, s.Dialect); err != nil {
			b.Fatal(err)
		}
		if err := sales.Migrate(ctx, s.DB, s.Dialect); err != nil {
			b.Fatal(err)
		}
		log := &eventlog.Log{Dialect: s.Dialect, Defs: defs, Rollups: []eventlog.Rollup{sales}}
		emit := func(b *testing.B, i int) {
			p, _ := json.Marshal(map[string]any{"deal_id": "d" + strconv.Itoa(i), "lead_id": "l", "salesperson_id": "s",
				"source": sources[i%len(sources)], "amount_cents": 1000 + i%5000})
			err := sqldb.InTx(ctx, s.DB, func(tx *sql.Tx) error {
				_, _, err := log.Emit(ctx, tx, events.Event{Name: "deal_closed", Version: 1,
					OccurredAt: march.AddDate(0, 0, i%365), Payload: p})
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.Run(s.Name+"/write-emit", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				emit(b, i)
			}
		})
		var have int64
		if err := s.DB.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&have); err != nil {
			b.Fatal(err)
		}
		if have < 10000 {
			// Bulk-load the rest through the same emit path, many per transaction.
			err := sqldb.InTx(ctx, s.DB, func(tx *sql.Tx) error {
				for i := int(have); i < 10000; i++ {
					p, _ := json.Marshal(map[string]any{"deal_id": "x" + strconv.Itoa(i), "lead_id": "l", "salesperson_id": "s",
						"source": sources[i%len(sources)], "amount_cents": 1000 + i%5000})
					if _, _, err := log.Emit(ctx, tx, events.Event{Name: "deal_closed", Version: 1,
						OccurredAt: march.AddDate(0, 0, i%365), Payload: p}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.Run(s.Name+"/read-rollup", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sales.Read(ctx, s.DB); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.Name+"/reconcile-10k", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if diffs, err := sales.Reconcile(ctx, s.DB, s.Dialect); err != nil || len(diffs) != 0 {
					b.Fatalf("%v %v", diffs, err)
				}
			}
		})
		b.Run(s.Name+"/recompute-10k", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if diffs, err := sales.Recompute(ctx, s.DB, s.Dialect); err != nil || len(diffs) != 0 {
					b.Fatalf("%v %v", diffs, err)
				}
			}
		})
	}
}
