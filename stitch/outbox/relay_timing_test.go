package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
)

// BenchmarkWrite is the cost a business transaction pays for its event: one outbox
// insert inside a transaction that commits (the commit dominates on both backends).
func BenchmarkWrite(b *testing.B) {
	for _, be := range []sqltest.Backend{sqltest.Postgres(b), sqltest.SQLite(b)} {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			if err := Migrate(ctx, be.DB, be.Dialect); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ev := leadEvent(fmt.Sprintf("lead-%d", i), t0)
				i++
				if err := sqldb.InTx(ctx, be.DB, func(tx *sql.Tx) error { return Write(ctx, tx, be.Dialect, ev) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRelay ships a backlog: events per second from the outbox into the events table
// (direct) or into JetStream (broker), batch 100.
func BenchmarkRelay(b *testing.B) {
	const backlog = 2000
	ctx := context.Background()
	for _, mode := range []string{"direct/sqlite", "direct/postgres", "jetstream/postgres"} {
		b.Run(mode, func(b *testing.B) {
			be := sqltest.SQLite(b)
			if mode != "direct/sqlite" {
				be = sqltest.Postgres(b)
			}
			if err := Migrate(ctx, be.DB, be.Dialect); err != nil {
				b.Fatal(err)
			}
			if err := events.Migrate(ctx, be.DB, be.Dialect); err != nil {
				b.Fatal(err)
			}
			var ship Shipper = NewDirect(be.Dialect)
			if mode == "jetstream/postgres" {
				broker, nc, _ := testBroker(b, natsURL())
				js, err := NewJetStream(nc, broker)
				if err != nil {
					b.Fatal(err)
				}
				ship = js
			}
			r, err := NewRelay(be.DB, be.Dialect, ship, RelayConfig{BatchSize: 100})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			shipped := 0
			var busy time.Duration
			for b.Loop() {
				b.StopTimer()
				tx, err := be.DB.BeginTx(ctx, nil)
				if err != nil {
					b.Fatal(err)
				}
				for i := range backlog {
					if err := Write(ctx, tx, be.Dialect, leadEvent(fmt.Sprintf("lead-%d", i), t0)); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				began := time.Now()
				for {
					n, err := r.RunOnce(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if n == 0 {
						break
					}
					shipped += n
				}
				busy += time.Since(began)
			}
			b.ReportMetric(float64(shipped)/busy.Seconds(), "events/s")
		})
	}
}
