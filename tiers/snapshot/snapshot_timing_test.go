package snapshot_test

import (
	"context"
	"testing"

	"github.com/rungdev/rung/stitch/sqldb/sqltest"
)

// BenchmarkSnapshot: a run samples three metrics over 10k contacts and 10k jobs and
// upserts them; a read is a year-long daily series of one metric.
func BenchmarkSnapshot(b *testing.B) {
	ctx := context.Background()
	for _, s := range sqltest.Backends(b) {
		j := job(b, s, nil)
		exec(b, s, `CREATE INDEX jobs_state ON jobs (state)`)
		exec(b, s, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
INSERT INTO contacts (id, created_at) SELECT 'c' || i, ? FROM n`, s.Dialect.Time(day1))
		exec(b, s, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
INSERT INTO jobs (id, state, value_cents, opened_at) SELECT 'j' || i, CASE WHEN i % 3 = 0 THEN 'won' ELSE 'open' END, i, ? FROM n`,
			s.Dialect.Time(day1))
		b.Run(s.Name+"/write-run", func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := j.Run(ctx, day1.AddDate(0, 0, i%365)); err != nil {
					b.Fatal(err)
				}
			}
		})
		for i := range 365 {
			if err := j.Run(ctx, day1.AddDate(0, 0, i)); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(s.Name+"/read-series-365", func(b *testing.B) {
			b.ReportAllocs()
			end := day1.AddDate(1, 0, 0)
			for b.Loop() {
				pts, err := j.Series(ctx, "open_jobs", day1, end)
				if err != nil || len(pts) != 365 {
					b.Fatalf("%d points, %v", len(pts), err)
				}
			}
		})
		b.Run(s.Name+"/missed-scan-365", func(b *testing.B) {
			b.ReportAllocs()
			end := day1.AddDate(0, 0, 364)
			for b.Loop() {
				if gaps, err := j.Missed(ctx, day1, end); err != nil || len(gaps) != 0 {
					b.Fatalf("%v %v", gaps, err)
				}
			}
		})
	}
}
