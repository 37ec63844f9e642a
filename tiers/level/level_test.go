package level_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/outbox"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
	"github.com/rungdev/rung/tiers/level"
	"go.uber.org/goleak"
)

func TestSyncCallsEveryHandlerInTheRequest(t *testing.T) {
	var calls []string
	s := level.NewSync(
		func(_ context.Context, e string) error { calls = append(calls, "a:"+e); return nil },
		func(_ context.Context, e string) error { calls = append(calls, "b:"+e); return errors.New("smtp down") },
		func(_ context.Context, e string) error { calls = append(calls, "c:"+e); return nil },
	)
	err := s.Emit(context.Background(), "deal_closed")
	if err == nil || err.Error() != "handler 1: smtp down" {
		t.Fatalf("emit: %v", err)
	}
	if fmt.Sprint(calls) != "[a:deal_closed b:deal_closed c:deal_closed]" {
		t.Fatalf("calls %v", calls)
	}
}

func TestAsyncShutdownDrains(t *testing.T) {
	defer goleak.VerifyNone(t)
	var sum atomic.Int64
	a, err := level.NewAsync(level.AsyncConfig{Capacity: 1000, Workers: 3},
		func(_ context.Context, n int) error {
			if n%10 == 0 {
				return errors.New("handler failed")
			}
			sum.Add(int64(n))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := int64(0)
	for i := 1; i <= 500; i++ {
		if err := a.Emit(i); err != nil {
			t.Fatal(err)
		}
		if i%10 != 0 {
			want += int64(i)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st := a.Shutdown(ctx)
	if st != (level.Stats{Enqueued: 500, Handled: 450, Failed: 50}) || sum.Load() != want {
		t.Fatalf("stats %+v, sum %d; want all 500 handled or failed, sum %d", st, sum.Load(), want)
	}
	if err := a.Emit(1); !errors.Is(err, level.ErrClosed) {
		t.Fatalf("emit after shutdown: %v", err)
	}
}

func TestAsyncRejectsWhenFull(t *testing.T) {
	defer goleak.VerifyNone(t)
	gate := make(chan struct{})
	var inFlight atomic.Int64
	a, err := level.NewAsync(level.AsyncConfig{Capacity: 3, Workers: 1},
		func(ctx context.Context, n int) error {
			inFlight.Add(1)
			select {
			case <-gate:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Emit(0); err != nil {
		t.Fatal(err)
	}
	harness.CheckFor(t, 30*time.Second, time.Millisecond, func() error {
		if inFlight.Load() != 1 {
			return errors.New("first event not picked up")
		}
		return nil
	})
	for i := 1; i <= 3; i++ {
		if err := a.Emit(i); err != nil {
			t.Fatalf("emit %d into a queue of 3: %v", i, err)
		}
	}
	if err := a.Emit(4); !errors.Is(err, level.ErrFull) {
		t.Fatalf("emit into a full queue: %v", err)
	}
	close(gate)
	st := a.Shutdown(context.Background())
	if st != (level.Stats{Enqueued: 4, Rejected: 1, Handled: 4}) {
		t.Fatalf("stats %+v", st)
	}
	if _, err := level.NewAsync[int](level.AsyncConfig{}); err == nil {
		t.Fatal("capacity 0 accepted")
	}
}

func TestAsyncShutdownDeadlineCountsLoss(t *testing.T) {
	defer goleak.VerifyNone(t)
	var started atomic.Int64
	a, err := level.NewAsync(level.AsyncConfig{Capacity: 100, Workers: 2},
		func(ctx context.Context, n int) error {
			started.Add(1)
			<-ctx.Done() // a handler stuck on a dead dependency
			return ctx.Err()
		})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := a.Emit(i); err != nil {
			t.Fatal(err)
		}
	}
	harness.CheckFor(t, 30*time.Second, time.Millisecond, func() error {
		if started.Load() != 2 {
			return fmt.Errorf("%d handlers running, want 2", started.Load())
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the drain deadline has already passed
	st := a.Shutdown(ctx)
	if st != (level.Stats{Enqueued: 20, Lost: 20}) {
		t.Fatalf("stats %+v, want all 20 lost and counted", st)
	}
}

// The ladder's in-process level loses events on a crash. The async dispatcher writes
// each event into the events table; the process "crashes" with 40 of 50 still queued
// or running. The loss is counted, and it is exactly what the events table lacks.
func TestAsyncLossOnCrashIsCounted(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			if err := events.Migrate(ctx, b.DB, b.Dialect); err != nil {
				t.Fatal(err)
			}
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			stall := make(chan struct{}) // never closed: the 11th write hangs until the crash
			a, err := level.NewAsync(level.AsyncConfig{Capacity: 100, Workers: 1},
				func(ctx context.Context, e events.Event) error {
					if e.SubjectID == "lead-10" {
						select {
						case <-stall:
						case <-ctx.Done():
							return ctx.Err()
						}
					}
					_, err := events.Insert(ctx, b.DB, b.Dialect, e)
					return err
				})
			if err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
			for i := range 50 {
				e := events.Event{ID: fmt.Sprintf("ev-%02d", i), Name: "lead_captured", Version: 1, OccurredAt: at,
					SubjectID: fmt.Sprint("lead-", i)}
				if err := a.Emit(e); err != nil {
					t.Fatal(err)
				}
			}
			harness.CheckFor(t, 30*time.Second, 2*time.Millisecond, func() error {
				if st := a.Stats(); st.Handled != 10 || st.Queued != 39 {
					return fmt.Errorf("not yet stalled on the 11th event: %+v", st)
				}
				return nil
			})
			st := a.Kill()
			if st.Enqueued != 50 || st.Handled != 10 || st.Lost != 40 || st.Failed != 0 ||
				st.Enqueued != st.Handled+st.Failed+st.Lost {
				t.Fatalf("after the crash: %+v, want 10 handled and 40 lost", st)
			}
			n, err := events.Count(ctx, b.DB, b.Dialect, events.Filter{Name: "lead_captured"})
			if err != nil || n != 10 || 50-n != st.Lost {
				t.Fatalf("events table holds %d (%v): the counted loss %d must be what it lacks", n, err, st.Lost)
			}
		})
	}
}

// The outbox level, on the same workload: each lead and its event commit in one
// transaction (stitch/outbox.Write). The process crashes after relaying 10 and with a
// relay round cut short; a relay started after the restart delivers the rest. Nothing
// is lost: every committed lead has its event in the events table.
func TestOutboxLossOnCrashIsZero(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			d := b.Dialect
			if err := events.Migrate(ctx, b.DB, d); err != nil {
				t.Fatal(err)
			}
			if err := outbox.Migrate(ctx, b.DB, d); err != nil {
				t.Fatal(err)
			}
			if _, err := b.DB.ExecContext(ctx, `CREATE TABLE leads (id TEXT PRIMARY KEY, source TEXT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
			for i := range 50 {
				lead := fmt.Sprint("lead-", i)
				err := sqldb.InTx(ctx, b.DB, func(tx *sql.Tx) error {
					if _, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO leads VALUES (?, 'webinar')`), lead); err != nil {
						return err
					}
					return outbox.Write(ctx, tx, d, outbox.Event{ID: fmt.Sprintf("event-%04d", i), Name: "lead_captured",
						Key: lead, OccurredAt: at, Payload: []byte(fmt.Sprintf(`{"lead_id":%q,"source":"webinar"}`, lead))})
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			relay := func() *outbox.Relay {
				r, err := outbox.NewRelay(b.DB, d, outbox.NewDirect(d), outbox.RelayConfig{BatchSize: 10})
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			first := relay()
			if n, err := first.RunOnce(ctx); err != nil || n != 10 {
				t.Fatalf("first relay round: %d %v", n, err)
			}
			crashed, crash := context.WithCancel(ctx)
			crash()
			if _, err := first.RunOnce(crashed); err == nil {
				t.Fatal("a relay round in a crashed process succeeded")
			}
			// Restart.
			after := relay()
			for {
				n, err := after.RunOnce(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
			}
			var leads int64
			if err := b.DB.QueryRowContext(ctx, `SELECT count(*) FROM leads`).Scan(&leads); err != nil {
				t.Fatal(err)
			}
			projected, err := events.Count(ctx, b.DB, d, events.Filter{Name: "lead_captured"})
			if err != nil {
				t.Fatal(err)
			}
			if leads != 50 || projected != leads {
				t.Fatalf("%d leads committed, %d events projected: the outbox lost %d", leads, projected, leads-projected)
			}
		})
	}
}
