package outbox

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rungdev/rung/stitch/sqldb/sqltest"
)

// TestConcurrentStarts starts 10 pipelines at once on a database that has none of
// rung's tables, as 10 relays started together would: each opens its own handle and
// migrates the outbox and the events table. All must start. On PostgreSQL, concurrent
// CREATE TABLE IF NOT EXISTS of one table collide in the catalog (a duplicate key in
// pg_type) unless one lock covers the whole migration; on SQLite the writers wait on
// the busy timeout.
func TestConcurrentStarts(t *testing.T) {
	const starters = 10
	fresh := sqltest.Postgres(t)
	for _, c := range []struct {
		name string
		cfg  PipelineConfig
	}{
		{"postgres", PipelineConfig{Postgres: schemaDSN(t, fresh.Schema)}},
		{"sqlite", PipelineConfig{SQLitePath: filepath.Join(t.TempDir(), BusinessDBFile)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var (
				wg    sync.WaitGroup
				start = make(chan struct{})
				errs  = make([]error, starters)
			)
			for i := range starters {
				wg.Go(func() {
					<-start
					p, err := OpenPipeline(ctx, c.cfg)
					if err != nil {
						errs[i] = err
						return
					}
					errs[i] = p.Close()
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("starter %d: %v", i, err)
				}
			}
		})
	}
}
