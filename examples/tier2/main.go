// Command tier2 walks through Tier 2 of the ladder, cached current state, on rung's
// embedded default (a SQLite file): a counter cache kept in the transaction that adds
// the job, a drift check that catches a write that went around it, the backfill that
// repairs it, and a materialized view refreshed on demand. With -redis it also keeps a
// cross-cutting "open jobs" total in Redis and drift-checks it the same way.
//
//	go run ./examples/tier2 [-db path] [-redis 127.0.0.1:6379]
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/redis/go-redis/v9"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/tiers/cache"
	"github.com/rungdev/rung/tiers/live"
)

func main() {
	path := flag.String("db", filepath.Join(os.TempDir(), "rung-tier2.db"), "SQLite file (recreated on every run)")
	redisAddr := flag.String("redis", "", "Redis address for the cross-cutting counter (skipped when empty)")
	flag.Parse()
	if err := run(context.Background(), *path, *redisAddr); err != nil {
		log.Fatal(err)
	}
}

var jobsCount = cache.Counter{Parent: "contacts", Key: "id", Column: "jobs_count", Child: "jobs", ForeignKey: "contact_id"}

func run(ctx context.Context, path, redisAddr string) error {
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
		`CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT NOT NULL)`,
		`CREATE TABLE jobs (id INTEGER PRIMARY KEY, contact_id TEXT NOT NULL REFERENCES contacts (id), state TEXT NOT NULL, value_cents BIGINT NOT NULL)`,
		`CREATE INDEX jobs_contact_id ON jobs (contact_id)`,
		`INSERT INTO contacts VALUES ('ada', 'Ada'), ('bob', 'Bob')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	if err := jobsCount.Migrate(ctx, db, d); err != nil {
		return err
	}
	var total *cache.Redis
	if redisAddr != "" {
		rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
		defer rdb.Close()
		total = cache.NewRedis(rdb, "rung:example:tier2:open_jobs")
		if _, err := total.Reset(ctx, func(context.Context) (int64, error) { return 0, nil }); err != nil {
			return err
		}
		defer rdb.Del(ctx, total.Key())
	}
	fmt.Printf("ladder tier 2 — cached current state (SQLite at %s)\n\n", path)

	fmt.Println("1. counter cache: the job and the count commit together.")
	addJob := func(contact string, cents int) error {
		err := sqldb.InTx(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO jobs (contact_id, state, value_cents) VALUES (?, 'open', ?)`, contact, cents); err != nil {
				return err
			}
			return jobsCount.Adjust(ctx, tx, d, contact, +1)
		})
		if err == nil && total != nil {
			_, err = total.Add(ctx, 1) // after the commit: Redis is not in the transaction
		}
		return err
	}
	for _, j := range []struct {
		c     string
		cents int
	}{{"ada", 120000}, {"ada", 45000}, {"bob", 9900}} {
		if err := addJob(j.c, j.cents); err != nil {
			return err
		}
	}
	for _, c := range []string{"ada", "bob"} {
		n, err := jobsCount.Get(ctx, db, d, c)
		if err != nil {
			return err
		}
		fmt.Printf("   %s.jobs_count = %d (a column read, no COUNT)\n", c, n)
	}

	fmt.Println("\n2. drift: a bulk import writes jobs without touching the cache.")
	if _, err := db.ExecContext(ctx, `INSERT INTO jobs (contact_id, state, value_cents) VALUES ('bob', 'open', 100), ('bob', 'open', 200)`); err != nil {
		return err
	}
	drift, err := jobsCount.Drift(ctx, db, d)
	if err != nil {
		return err
	}
	for _, x := range drift {
		fmt.Printf("   drift check: %s\n", x)
	}
	n, err := jobsCount.Backfill(ctx, db, d)
	if err != nil {
		return err
	}
	fmt.Printf("   backfill from the source of truth fixed %d row(s)\n", n)
	if drift, err = jobsCount.Drift(ctx, db, d); err != nil {
		return err
	}
	fmt.Printf("   drift check again: %d drift(s)\n", len(drift))

	if total != nil {
		fmt.Println("\n   Redis open_jobs missed the import too:")
		src := cache.FromQuery(db, d, live.Count("jobs", live.Eq("state", "open")))
		rd, err := total.Drift(ctx, src)
		if err != nil {
			return err
		}
		for _, x := range rd {
			fmt.Printf("   drift check: %s\n", x)
		}
		v, err := total.Reset(ctx, src)
		if err != nil {
			return err
		}
		fmt.Printf("   reset from the source of truth: %d\n", v)
	}

	fmt.Println("\n3. materialized view, refreshed on demand (a table rebuilt in one transaction on SQLite;")
	fmt.Println("   REFRESH MATERIALIZED VIEW CONCURRENTLY on PostgreSQL).")
	pipeline := cache.View{Name: "pipeline_now", Unique: []string{"state"},
		Query: `SELECT state, count(*) AS jobs, sum(value_cents) AS value_cents FROM jobs GROUP BY state`}
	if err := pipeline.Create(ctx, db, d); err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `UPDATE jobs SET state = 'won' WHERE id = 1`); err != nil {
		return err
	}
	show := func(when string) error {
		rows, err := db.QueryContext(ctx, `SELECT state, jobs, value_cents FROM pipeline_now ORDER BY state`)
		if err != nil {
			return err
		}
		defer rows.Close()
		fmt.Printf("   %s:", when)
		for rows.Next() {
			var st string
			var jobs, cents int64
			if err := rows.Scan(&st, &jobs, &cents); err != nil {
				return err
			}
			fmt.Printf("  %s %d jobs $%.2f", st, jobs, float64(cents)/100)
		}
		fmt.Println()
		return rows.Err()
	}
	if err := show("before refresh (stale: job 1 was won)"); err != nil {
		return err
	}
	if err := pipeline.Refresh(ctx, db, d); err != nil {
		return err
	}
	if err := show("after refresh"); err != nil {
		return err
	}
	fmt.Println("\nStill no history: these are today's values, cheaply. Freshness is now a choice.")
	return nil
}
