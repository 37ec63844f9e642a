package cache_test

import (
	"context"
	"database/sql"
	"strconv"
	"testing"

	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
	"github.com/rungdev/rung/tiers/cache"
	"github.com/rungdev/rung/tiers/live"
)

// BenchmarkCache: the write cost of keeping the cache (the job insert plus the counter
// in one transaction, or an INCRBY) against the read it buys (a column or a GET instead
// of a COUNT over 10k jobs).
func BenchmarkCache(b *testing.B) {
	ctx := context.Background()
	rdb, prefix := redisClient(b)
	for _, s := range sqltest.Backends(b) {
		schema(b, s)
		exec(b, s, `INSERT INTO contacts (id) VALUES ('c1')`)
		exec(b, s, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
INSERT INTO jobs (id, contact_id, state, value_cents) SELECT 'seed' || i, 'c1', 'open', i FROM n`)
		if _, err := jobsCount.Backfill(ctx, s.DB, s.Dialect); err != nil {
			b.Fatal(err)
		}
		b.Run(s.Name+"/counter-write", func(b *testing.B) {
			b.ReportAllocs()
			ins := s.Dialect.Rebind(`INSERT INTO jobs (id, contact_id, state) VALUES (?, 'c1', 'open')`)
			run := sqltest.Suffix() // -count repeats this function on the same table
			for i := 0; b.Loop(); i++ {
				err := sqldb.InTx(ctx, s.DB, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, ins, run+strconv.Itoa(i)); err != nil {
						return err
					}
					return jobsCount.Adjust(ctx, tx, s.Dialect, "c1", 1)
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.Name+"/counter-read", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jobsCount.Get(ctx, s.DB, s.Dialect, "c1"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.Name+"/live-count-read", func(b *testing.B) { // what the counter replaces
			b.ReportAllocs()
			q := live.Count("jobs", live.Eq("contact_id", "c1"))
			for b.Loop() {
				if _, err := q.Run(ctx, s.DB, s.Dialect); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.Name+"/drift-check", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := jobsCount.Drift(ctx, s.DB, s.Dialect); err != nil {
					b.Fatal(err)
				}
			}
		})
		v := cache.View{Name: "pipeline_now", Unique: []string{"state"},
			Query: `SELECT state, count(*) AS jobs, sum(value_cents) AS value_cents FROM jobs GROUP BY state`}
		if err := v.Create(ctx, s.DB, s.Dialect); err != nil {
			b.Fatal(err)
		}
		b.Run(s.Name+"/view-refresh", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := v.Refresh(ctx, s.DB, s.Dialect); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	r := cache.NewRedis(rdb, prefix+"bench")
	b.Run("redis/write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Add(ctx, 1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("redis/read", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Get(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
