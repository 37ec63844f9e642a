package cache_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
	"github.com/rungdev/rung/tiers/cache"
	"github.com/rungdev/rung/tiers/live"
)

var jobsCount = cache.Counter{Parent: "contacts", Key: "id", Column: "jobs_count", Child: "jobs", ForeignKey: "contact_id"}

func exec(t testing.TB, b sqltest.Backend, q string, args ...any) {
	t.Helper()
	if _, err := b.DB.ExecContext(context.Background(), b.Dialect.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func schema(t testing.TB, b sqltest.Backend) {
	t.Helper()
	exec(t, b, `CREATE TABLE contacts (id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '')`)
	exec(t, b, `CREATE TABLE jobs (id TEXT PRIMARY KEY, contact_id TEXT NOT NULL REFERENCES contacts (id), state TEXT NOT NULL, value_cents BIGINT NOT NULL DEFAULT 0)`)
	exec(t, b, `CREATE INDEX jobs_contact_id ON jobs (contact_id)`)
	if err := jobsCount.Migrate(context.Background(), b.DB, b.Dialect); err != nil {
		t.Fatal(err)
	}
	if err := jobsCount.Migrate(context.Background(), b.DB, b.Dialect); err != nil {
		t.Fatalf("second migrate must be a no-op: %v", err)
	}
}

// addJob is the one write path that keeps the cache: child row and counter in one transaction.
func addJob(ctx context.Context, b sqltest.Backend, id, contact, state string, fail bool) error {
	return sqldb.InTx(ctx, b.DB, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, b.Dialect.Rebind(`INSERT INTO jobs (id, contact_id, state) VALUES (?, ?, ?)`), id, contact, state); err != nil {
			return err
		}
		if err := jobsCount.Adjust(ctx, tx, b.Dialect, contact, +1); err != nil {
			return err
		}
		if fail {
			return errors.New("the request failed after both writes")
		}
		return nil
	})
}

func removeJob(ctx context.Context, b sqltest.Backend, id, contact string) error {
	return sqldb.InTx(ctx, b.DB, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, b.Dialect.Rebind(`DELETE FROM jobs WHERE id = ?`), id); err != nil {
			return err
		}
		return jobsCount.Adjust(ctx, tx, b.Dialect, contact, -1)
	})
}

func TestCounterCacheKeptInTransaction(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			schema(t, b)
			exec(t, b, `INSERT INTO contacts (id) VALUES ('c1'), ('c2')`)
			for i := range 3 {
				if err := addJob(ctx, b, fmt.Sprint("j", i), "c1", "open", false); err != nil {
					t.Fatal(err)
				}
			}
			if err := removeJob(ctx, b, "j0", "c1"); err != nil {
				t.Fatal(err)
			}
			// A failed request rolls back the job and the counter together.
			if err := addJob(ctx, b, "j9", "c2", "open", true); err == nil {
				t.Fatal("failing transaction committed")
			}
			if err := addJob(ctx, b, "j8", "nobody", "open", false); err == nil {
				t.Fatal("job for a missing contact committed")
			}
			for _, c := range []struct {
				id   string
				want int64
			}{{"c1", 2}, {"c2", 0}} {
				if got, err := jobsCount.Get(ctx, b.DB, b.Dialect, c.id); err != nil || got != c.want {
					t.Errorf("%s jobs_count = %d (%v), want %d", c.id, got, err, c.want)
				}
			}
			if d, err := jobsCount.Drift(ctx, b.DB, b.Dialect); err != nil || len(d) != 0 {
				t.Fatalf("drift on a correct cache: %v %v", d, err)
			}
			if err := jobsCount.Adjust(ctx, b.DB, b.Dialect, "nobody", 1); !errors.Is(err, cache.ErrNoParent) {
				t.Fatalf("adjust of a missing parent: %v", err)
			}
		})
	}
}

// The ladder's Tier 2 risk: a cache that drifts when a write goes around it. The drift
// check catches each corruption exactly, and the backfill from the source of truth
// repairs it.
func TestCounterDriftCatchesCorruption(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			schema(t, b)
			exec(t, b, `INSERT INTO contacts (id) VALUES ('c1'), ('c2'), ('c3')`)
			for i, c := range []string{"c1", "c1", "c2", "c3"} {
				if err := addJob(ctx, b, fmt.Sprint("j", i), c, "open", false); err != nil {
					t.Fatal(err)
				}
			}
			// Behind the cache's back: a bulk import and a hand edit.
			exec(t, b, `INSERT INTO jobs (id, contact_id, state) VALUES ('imported', 'c2', 'open')`)
			exec(t, b, `UPDATE contacts SET jobs_count = 42 WHERE id = 'c3'`)
			drift, err := jobsCount.Drift(ctx, b.DB, b.Dialect)
			if err != nil {
				t.Fatal(err)
			}
			want := []cache.Drift{{Key: "c2", Cached: 1, Live: 2}, {Key: "c3", Cached: 42, Live: 1}}
			if fmt.Sprint(drift) != fmt.Sprint(want) {
				t.Fatalf("drift = %v, want %v", drift, want)
			}
			if err := jobsCount.Reset(ctx, b.DB, b.Dialect, "c3"); err != nil {
				t.Fatal(err)
			}
			if n, err := jobsCount.Backfill(ctx, b.DB, b.Dialect); err != nil || n != 1 {
				t.Fatalf("backfill changed %d rows (%v), want 1 (c2; c3 was reset)", n, err)
			}
			if n, err := jobsCount.Backfill(ctx, b.DB, b.Dialect); err != nil || n != 0 {
				t.Fatalf("second backfill changed %d rows (%v), want 0", n, err)
			}
			if d, err := jobsCount.Drift(ctx, b.DB, b.Dialect); err != nil || len(d) != 0 {
				t.Fatalf("drift after backfill: %v %v", d, err)
			}
		})
	}
}

func redisClient(t testing.TB) (*redis.Client, string) {
	t.Helper()
	addr := os.Getenv("RUNG_TEST_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s (set RUNG_TEST_REDIS): %v", addr, err)
	}
	prefix := "rung:test:" + sqltest.Suffix() + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, err := rdb.Keys(ctx, prefix+"*").Result()
		if err == nil && len(keys) > 0 {
			err = rdb.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("clean up redis keys %s*: %v", prefix, err)
		}
		rdb.Close()
	})
	return rdb, prefix
}

func TestRedisCounterDrift(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redisClient(t)
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			schema(t, b)
			exec(t, b, `INSERT INTO contacts (id) VALUES ('c1')`)
			open := cache.NewRedis(rdb, prefix+b.Name+":open_jobs")
			src := cache.FromQuery(b.DB, b.Dialect, live.Count("jobs", live.Eq("state", "open")))
			if _, err := open.Get(ctx); !errors.Is(err, cache.ErrCold) {
				t.Fatalf("get of a never-set counter: %v, want ErrCold", err)
			}
			if d, err := open.Drift(ctx, src); err != nil || len(d) != 0 {
				t.Fatalf("cold counter over an empty table: %v %v", d, err)
			}
			for i := range 4 {
				if err := addJob(ctx, b, fmt.Sprint("j", i), "c1", "open", false); err != nil {
					t.Fatal(err)
				}
				if _, err := open.Add(ctx, 1); err != nil { // after the commit
					t.Fatal(err)
				}
			}
			exec(t, b, `UPDATE jobs SET state = 'won' WHERE id = 'j0'`)
			if _, err := open.Add(ctx, -1); err != nil {
				t.Fatal(err)
			}
			if v, err := open.Get(ctx); err != nil || v != 3 {
				t.Fatalf("open jobs = %d (%v), want 3", v, err)
			}
			if d, err := open.Drift(ctx, src); err != nil || len(d) != 0 {
				t.Fatalf("drift on a correct counter: %v %v", d, err)
			}
			// A close that forgot the DECR, and someone poking Redis by hand.
			exec(t, b, `UPDATE jobs SET state = 'lost' WHERE id = 'j1'`)
			if err := rdb.IncrBy(ctx, open.Key(), 10).Err(); err != nil {
				t.Fatal(err)
			}
			d, err := open.Drift(ctx, src)
			want := []cache.Drift{{Key: open.Key(), Cached: 13, Live: 2}}
			if err != nil || fmt.Sprint(d) != fmt.Sprint(want) {
				t.Fatalf("drift = %v (%v), want %v", d, err, want)
			}
			if v, err := open.Reset(ctx, src); err != nil || v != 2 {
				t.Fatalf("reset = %d (%v), want 2", v, err)
			}
			if d, err := open.Drift(ctx, src); err != nil || len(d) != 0 {
				t.Fatalf("drift after reset: %v %v", d, err)
			}
		})
	}
}

func TestViewRefresh(t *testing.T) {
	ctx := context.Background()
	pipeline := cache.View{Name: "pipeline_now", Unique: []string{"state"},
		Query: `SELECT state, count(*) AS jobs, sum(value_cents) AS value_cents FROM jobs GROUP BY state`}
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			schema(t, b)
			exec(t, b, `INSERT INTO contacts (id) VALUES ('c1')`)
			exec(t, b, `INSERT INTO jobs (id, contact_id, state, value_cents) VALUES ('j1', 'c1', 'open', 100), ('j2', 'c1', 'won', 50)`)
			if err := pipeline.Create(ctx, b.DB, b.Dialect); err != nil {
				t.Fatal(err)
			}
			if err := pipeline.Create(ctx, b.DB, b.Dialect); err != nil {
				t.Fatalf("second create must be a no-op: %v", err)
			}
			read := func() string {
				t.Helper()
				rows, err := b.DB.QueryContext(ctx, `SELECT state, jobs, value_cents FROM pipeline_now ORDER BY state`)
				if err != nil {
					t.Fatal(err)
				}
				defer rows.Close()
				var s string
				for rows.Next() {
					var st string
					var n, v int64
					if err := rows.Scan(&st, &n, &v); err != nil {
						t.Fatal(err)
					}
					s += fmt.Sprintf("%s:%d:%d ", st, n, v)
				}
				return s
			}
			if got := read(); got != "open:1:100 won:1:50 " {
				t.Fatalf("after create: %q", got)
			}
			exec(t, b, `INSERT INTO jobs (id, contact_id, state, value_cents) VALUES ('j3', 'c1', 'open', 25), ('j4', 'c1', 'lost', 7)`)
			if got := read(); got != "open:1:100 won:1:50 " {
				t.Fatalf("a materialized view must stay stale until refreshed, got %q", got)
			}
			for range 2 {
				if err := pipeline.Refresh(ctx, b.DB, b.Dialect); err != nil {
					t.Fatal(err)
				}
				if got := read(); got != "lost:1:7 open:2:125 won:1:50 " {
					t.Fatalf("after refresh: %q", got)
				}
			}
		})
	}
	for _, v := range []cache.View{
		{Name: "v", Query: "DELETE FROM jobs", Unique: []string{"a"}},
		{Name: "v", Query: "SELECT 1 AS a"},
		{Name: "v-1", Query: "SELECT 1 AS a", Unique: []string{"a"}},
	} {
		b := sqltest.SQLite(t)
		if err := v.Create(ctx, b.DB, b.Dialect); !errors.Is(err, cache.ErrDecl) {
			t.Errorf("%+v: %v, want ErrDecl", v, err)
		}
	}
}
