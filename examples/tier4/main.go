// Command tier4 walks through Tier 4 of the ladder, event log + rollups, on rung's
// embedded default (a SQLite file): leads arrive through the outbox (stitch/outbox,
// committed with the lead, relayed into the events table), deals close with a
// deal_closed event emitted in the same transaction with the lead's source frozen into
// it, a later edit of the lead does not move the revenue, rollups are recomputed
// idempotently, and reconcile catches an incremental rollup that went wrong.
//
//	go run ./examples/tier4 [-db path]
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/outbox"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/tiers/eventlog"
)

func main() {
	path := flag.String("db", filepath.Join(os.TempDir(), "rung-tier4.db"), "SQLite file (recreated on every run)")
	flag.Parse()
	if err := run(context.Background(), *path); err != nil {
		log.Fatal(err)
	}
}

var (
	sales = eventlog.Rollup{Table: "sales_rollups", Event: "deal_closed", Bucket: sqldb.Month, By: "source"}
	leads = eventlog.Rollup{Table: "lead_rollups", Event: "lead_captured", Bucket: sqldb.Month, By: "source"}
)

func run(ctx context.Context, path string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
	d := sqldb.SQLite
	db, err := sqldb.Open(ctx, d, path)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE leads (id TEXT PRIMARY KEY, source TEXT NOT NULL)`,
		`CREATE TABLE deals (id TEXT PRIMARY KEY, lead_id TEXT NOT NULL REFERENCES leads (id), rep_id TEXT NOT NULL,
			state TEXT NOT NULL, total_cents BIGINT NOT NULL)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	if err := events.Migrate(ctx, db, d); err != nil {
		return err
	}
	if err := outbox.Migrate(ctx, db, d); err != nil {
		return err
	}
	for _, r := range []eventlog.Rollup{sales, leads} {
		if err := r.Migrate(ctx, db, d); err != nil {
			return err
		}
	}
	defs, err := eventlog.Ladder()
	if err != nil {
		return err
	}
	// deal_closed goes straight into the events table in the deal's transaction, and
	// the sales rollup is kept incrementally in that same transaction.
	evlog := &eventlog.Log{Dialect: d, Defs: defs, Rollups: []eventlog.Rollup{sales}}
	fmt.Printf("ladder tier 4 — event log + rollups (SQLite at %s)\n\n", path)

	fmt.Println("1. Leads arrive; each lead_captured event commits with its lead through the outbox.")
	march := time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)
	for i, l := range []struct{ id, source string }{{"l1", "webinar"}, {"l2", "google"}, {"l3", "webinar"}} {
		payload, _ := json.Marshal(map[string]string{"lead_id": l.id, "source": l.source})
		if err := defs.Validate("lead_captured", 1, payload); err != nil {
			return err
		}
		err := sqldb.InTx(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO leads VALUES (?, ?)`, l.id, l.source); err != nil {
				return err
			}
			return outbox.Write(ctx, tx, d, outbox.Event{ID: fmt.Sprintf("lead-captured-%s", l.id), Name: "lead_captured",
				Key: l.id, OccurredAt: march.AddDate(0, 0, i), Payload: payload})
		})
		if err != nil {
			return err
		}
	}
	relay, err := outbox.NewRelay(db, d, outbox.NewDirect(d), outbox.RelayConfig{})
	if err != nil {
		return err
	}
	n, err := relay.RunOnce(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("   relay projected %d outbox rows into the events table\n", n)

	fmt.Println("\n2. Deals close; deal_closed is emitted in the same transaction, the source frozen.")
	for _, q := range []string{
		`INSERT INTO deals VALUES ('d1', 'l1', 'rep-ann', 'open', 1200000)`,
		`INSERT INTO deals VALUES ('d2', 'l2', 'rep-bo', 'open', 450000)`,
		`INSERT INTO deals VALUES ('d3', 'l3', 'rep-ann', 'open', 80000)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		deal string
		at   time.Time
	}{{"d1", march.AddDate(0, 0, 20)}, {"d2", march.AddDate(0, 0, 22)}, {"d3", march.AddDate(0, 1, 2)}} {
		if err := closeDeal(ctx, db, evlog, c.deal, c.at); err != nil {
			return err
		}
	}
	if err := printRollup(ctx, db, sales, "   sales by source (incremental)"); err != nil {
		return err
	}

	fmt.Println("\n3. In May a CRM cleanup changes lead l1's source from webinar to google.")
	if _, err := db.ExecContext(ctx, `UPDATE leads SET source = 'google' WHERE id = 'l1'`); err != nil {
		return err
	}
	var liveGoogle int64
	if err := db.QueryRowContext(ctx, `SELECT coalesce(sum(d.total_cents), 0) FROM deals d JOIN leads l ON l.id = d.lead_id
		WHERE d.state = 'won' AND l.source = 'google'`).Scan(&liveGoogle); err != nil {
		return err
	}
	fmt.Printf("   a live join now credits google with $%.2f (wrong: webinar closed the big deal)\n", float64(liveGoogle)/100)
	if err := printRollup(ctx, db, sales, "   the rollup from frozen events still says"); err != nil {
		return err
	}

	fmt.Println("\n4. Roll up by recomputation: idempotent.")
	for run := 1; run <= 2; run++ {
		changed, err := leads.Recompute(ctx, db, d)
		if err != nil {
			return err
		}
		fmt.Printf("   recompute lead_rollups, run %d: %d group(s) changed\n", run, len(changed))
	}
	if err := printRollup(ctx, db, leads, "   leads by source"); err != nil {
		return err
	}

	fmt.Println("\n5. Reconcile: the recompute is the auditor.")
	diffs, err := sales.Reconcile(ctx, db, d)
	if err != nil {
		return err
	}
	fmt.Printf("   reconcile sales_rollups: %d diff(s)\n", len(diffs))
	// A bug: an importer writes a deal_closed event around the incremental path.
	amount := 99900.0
	if _, err := events.Insert(ctx, db, d, events.Event{ID: "imported-d9", Name: "deal_closed", Version: 1,
		OccurredAt: march.AddDate(0, 0, 25), SubjectID: "d9", Source: "google", Amount: &amount,
		Payload: json.RawMessage(`{"deal_id":"d9"}`)}); err != nil {
		return err
	}
	if diffs, err = sales.Reconcile(ctx, db, d); err != nil {
		return err
	}
	for _, x := range diffs {
		fmt.Printf("   caught: %s\n", x)
	}
	fixed, err := sales.Recompute(ctx, db, d)
	if err != nil {
		return err
	}
	fmt.Printf("   recompute repaired %d group(s); unique event_id means a replayed event never counts twice\n", len(fixed))
	return nil
}

// closeDeal is the ladder's close_deal!: change the row and emit the event, values
// copied in now, in one transaction.
func closeDeal(ctx context.Context, db *sql.DB, evlog *eventlog.Log, deal string, at time.Time) error {
	return sqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE deals SET state = 'won' WHERE id = ?`, deal); err != nil {
			return err
		}
		var lead, rep, source string
		var cents int64
		if err := tx.QueryRowContext(ctx, `SELECT d.lead_id, d.rep_id, l.source, d.total_cents
			FROM deals d JOIN leads l ON l.id = d.lead_id WHERE d.id = ?`, deal).Scan(&lead, &rep, &source, &cents); err != nil {
			return err
		}
		payload, _ := json.Marshal(map[string]any{"deal_id": deal, "lead_id": lead, "salesperson_id": rep,
			"source": source, "amount_cents": cents})
		_, _, err := evlog.Emit(ctx, tx, events.Event{Name: "deal_closed", Version: 1, OccurredAt: at, Payload: payload})
		return err
	})
}

func printRollup(ctx context.Context, db *sql.DB, r eventlog.Rollup, title string) error {
	rows, err := r.Read(ctx, db)
	if err != nil {
		return err
	}
	fmt.Printf("%s:\n", title)
	for _, x := range rows {
		if r.Event == "deal_closed" {
			fmt.Printf("     %s %-8s %d deal(s)  $%.2f\n", x.Period, x.Dim, x.Events, x.Amount/100)
		} else {
			fmt.Printf("     %s %-8s %d\n", x.Period, x.Dim, x.Events)
		}
	}
	return nil
}
