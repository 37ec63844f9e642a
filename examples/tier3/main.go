// Command tier3 walks through Tier 3 of the ladder, periodic snapshot, on rung's
// embedded default (a SQLite file): a nightly job writes contacts, open jobs and
// pipeline value to daily_metrics keyed by as_of; a week of simulated days shows the
// history it keeps, the churn it hides (+1 for 3 created and 2 deleted), and a missed
// run backfilled where the source keeps the past and left as a hole where it does not.
//
//	go run ./examples/tier3 [-db path]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/tiers/live"
	"github.com/rungdev/rung/tiers/snapshot"
)

func main() {
	path := flag.String("db", filepath.Join(os.TempDir(), "rung-tier3.db"), "SQLite file (recreated on every run)")
	flag.Parse()
	if err := run(context.Background(), *path); err != nil {
		log.Fatal(err)
	}
}

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
	exec := func(q string, args ...any) {
		if err == nil {
			_, err = db.ExecContext(ctx, q, args...)
		}
	}
	exec(`CREATE TABLE contacts (id TEXT PRIMARY KEY)`)
	exec(`CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, value_cents BIGINT NOT NULL,
		opened_at TIMESTAMP NOT NULL, closed_at TIMESTAMP)`)
	if err != nil {
		return err
	}
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := day
	job := &snapshot.Job{DB: db, Dialect: d, Table: "daily_metrics", Every: 24 * time.Hour, Offset: 5 * time.Minute,
		Now: func() time.Time { return now },
		Metrics: []snapshot.Metric{
			{Name: "contacts", Live: live.Count("contacts")},
			{Name: "open_jobs", Live: live.Count("jobs", live.Eq("state", "open")),
				// Jobs are never deleted and keep when they opened and closed, so the
				// past of this metric can be rebuilt after a missed run.
				AsOf: func(ctx context.Context, q sqldb.Querier, d sqldb.Dialect, at time.Time) (float64, error) {
					var n float64
					err := q.QueryRowContext(ctx, `SELECT count(*) FROM jobs WHERE opened_at < ? AND (closed_at IS NULL OR closed_at >= ?)`,
						d.Time(at), d.Time(at)).Scan(&n)
					return n, err
				}},
			{Name: "pipeline_cents", Live: live.Sum("jobs", "value_cents", live.Eq("state", "open"))},
		}}
	if err := job.Migrate(ctx); err != nil {
		return err
	}
	fmt.Printf("ladder tier 3 — periodic snapshot (SQLite at %s)\n\n", path)

	// A week of business; the nightly job runs at 00:05 (job.Loop schedules it in a
	// real deployment; here the clock is simulated and CatchUp is what each tick runs).
	contact, jobN := 0, 0
	addContacts := func(n int) {
		for range n {
			contact++
			exec(`INSERT INTO contacts VALUES (?)`, fmt.Sprint("c", contact))
		}
	}
	openJob := func(at time.Time, cents int) {
		jobN++
		exec(`INSERT INTO jobs VALUES (?, 'open', ?, ?, NULL)`, fmt.Sprint("j", jobN), cents, d.Time(at))
	}
	for i := range 8 {
		now = day.AddDate(0, 0, i).Add(5 * time.Minute)
		if i == 3 || i == 4 {
			fmt.Printf("   %s: the server was down at 00:05, no run\n", now.Format("Jan 2"))
		} else {
			rep, err := job.CatchUp(ctx, 30)
			if err != nil {
				return err
			}
			for _, f := range rep.Filled {
				fmt.Printf("   %s: missed run backfilled for %v\n", f.AsOf.Format("Jan 2"), f.Metrics)
			}
			for _, h := range rep.Holes {
				fmt.Printf("   %s: missed run, cannot rebuild %v (deleted rows keep no past)\n", h.AsOf.Format("Jan 2"), h.Metrics)
			}
		}
		during := now.Add(10 * time.Hour)
		switch i {
		case 0:
			addContacts(10)
			openJob(during, 50000)
		case 1:
			addContacts(3)
			exec(`DELETE FROM contacts WHERE id IN ('c2', 'c11')`)
			openJob(during, 25000)
		case 3:
			openJob(during, 10000)
			exec(`UPDATE jobs SET state = 'won', closed_at = ? WHERE id = 'j1'`, d.Time(during.Add(time.Hour)))
			addContacts(1)
		case 4:
			addContacts(2)
		}
		if err != nil {
			return err
		}
	}

	fmt.Println("\nseries (as_of: value, * = backfilled):")
	for _, m := range job.Metrics {
		pts, err := job.Series(ctx, m.Name, day, now)
		if err != nil {
			return err
		}
		fmt.Printf("   %-15s", m.Name)
		for _, p := range pts {
			mark := ""
			if p.Backfilled {
				mark = "*"
			}
			fmt.Printf(" %s:%g%s", p.AsOf.Format("Jan2"), p.Value, mark)
		}
		fmt.Println()
	}
	fmt.Println("\nOn Mar 2 → Mar 3, contacts went 10 → 11: +1. That day 3 were created and 2 deleted;")
	fmt.Println("the snapshot cannot say so. Tier 4 (events) can. Daily cadence also means no hourly, ever.")
	return nil
}
