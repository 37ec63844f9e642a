package live_test

import (
	"context"
	"testing"
	"time"

	"github.com/rungdev/rung/stitch/sqldb/sqltest"
	"github.com/rungdev/rung/tiers/live"
)

// seed fills contacts with n rows, a quarter of them archived, spread over a year.
func seed(b *testing.B, s sqltest.Backend, n int) {
	b.Helper()
	d := s.Dialect
	schema(b, s)
	exec(b, s, `CREATE INDEX contacts_status_idx ON contacts (status)`)
	exec(b, s, `CREATE INDEX contacts_created_at_idx ON contacts (created_at)`)
	exec(b, s, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO contacts (id, status, created_at)
SELECT 'c' || i, CASE WHEN i % 4 = 0 THEN 'archived' ELSE 'active' END, ? FROM n`, n, d.Time(march))
}

// BenchmarkLive: Tier 1 writes are plain inserts; every read runs the aggregate.
func BenchmarkLive(b *testing.B) {
	ctx := context.Background()
	for _, s := range sqltest.Backends(b) {
		seed(b, s, 10000)
		b.Run(s.Name+"/write", func(b *testing.B) {
			b.ReportAllocs()
			q := s.Dialect.Rebind(`INSERT INTO contacts (id, status, created_at) VALUES (?, 'active', ?)`)
			at := s.Dialect.Time(time.Now())
			run := sqltest.Suffix() // -count repeats this function on the same table
			for i := 0; b.Loop(); i++ {
				if _, err := s.DB.ExecContext(ctx, q, run+itoa(i), at); err != nil {
					b.Fatal(err)
				}
			}
		})
		q := live.Count("contacts", live.Eq("status", "active"))
		b.Run(s.Name+"/read-count-10k", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := q.Run(ctx, s.DB, s.Dialect); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func itoa(i int) string {
	var buf [20]byte
	n := len(buf)
	for {
		n--
		buf[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(buf[n:])
		}
	}
}
