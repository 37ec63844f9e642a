package snapshot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
	"github.com/rungdev/rung/tiers/eventlog"
	"github.com/rungdev/rung/tiers/live"
	"github.com/rungdev/rung/tiers/snapshot"
	"go.uber.org/goleak"
)

var day1 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func exec(t testing.TB, b sqltest.Backend, q string, args ...any) {
	t.Helper()
	if _, err := b.DB.ExecContext(context.Background(), b.Dialect.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// openJobsAsOf reconstructs open jobs at any past instant: jobs are never deleted, and
// they keep when they opened and closed.
func openJobsAsOf(ctx context.Context, q sqldb.Querier, d sqldb.Dialect, at time.Time) (float64, error) {
	var n float64
	err := q.QueryRowContext(ctx, d.Rebind(`SELECT count(*) FROM jobs WHERE opened_at < ? AND (closed_at IS NULL OR closed_at >= ?)`),
		d.Time(at), d.Time(at)).Scan(&n)
	return n, err
}

func job(t testing.TB, b sqltest.Backend, now *time.Time) *snapshot.Job {
	t.Helper()
	ts := b.Dialect.TimeType()
	exec(t, b, `CREATE TABLE contacts (id TEXT PRIMARY KEY, created_at `+ts+` NOT NULL)`)
	exec(t, b, `CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT NOT NULL, value_cents BIGINT NOT NULL, opened_at `+ts+` NOT NULL, closed_at `+ts+`)`)
	j := &snapshot.Job{DB: b.DB, Dialect: b.Dialect, Table: "daily_metrics", Every: 24 * time.Hour,
		Metrics: []snapshot.Metric{
			{Name: "contacts", Live: live.Count("contacts")},
			{Name: "open_jobs", Live: live.Count("jobs", live.Eq("state", "open")), AsOf: openJobsAsOf},
			{Name: "pipeline_cents", Live: live.Sum("jobs", "value_cents", live.Eq("state", "open"))},
		}}
	if now != nil {
		j.Now = func() time.Time { return *now }
	}
	if err := j.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return j
}

func values(t testing.TB, j *snapshot.Job, metric string, from, to time.Time) string {
	t.Helper()
	pts, err := j.Series(context.Background(), metric, from, to)
	if err != nil {
		t.Fatal(err)
	}
	s := ""
	for _, p := range pts {
		bf := ""
		if p.Backfilled {
			bf = "*"
		}
		s += fmt.Sprintf("%s=%g%s ", p.AsOf.Format("01-02"), p.Value, bf)
	}
	return s
}

func TestRunUpsertsBySlotAndSeries(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			j := job(t, b, nil)
			exec(t, b, `INSERT INTO jobs VALUES ('j1', 'open', 100, ?, NULL), ('j2', 'open', 250, ?, NULL)`, b.Dialect.Time(day1), b.Dialect.Time(day1))
			if err := j.Run(ctx, day1.Add(5*time.Minute)); err != nil {
				t.Fatal(err)
			}
			exec(t, b, `INSERT INTO contacts VALUES ('c1', ?)`, b.Dialect.Time(day1))
			// A rerun of the same slot (a retried cron) replaces, never duplicates.
			if err := j.Run(ctx, day1.Add(7*time.Hour)); err != nil {
				t.Fatal(err)
			}
			exec(t, b, `UPDATE jobs SET state = 'won' WHERE id = 'j1'`)
			if err := j.Run(ctx, day1.AddDate(0, 0, 1).Add(5*time.Minute)); err != nil {
				t.Fatal(err)
			}
			end := day1.AddDate(0, 0, 7)
			for metric, want := range map[string]string{
				"contacts":       "03-01=1 03-02=1 ",
				"open_jobs":      "03-01=2 03-02=1 ",
				"pipeline_cents": "03-01=350 03-02=250 ",
			} {
				if got := values(t, j, metric, day1, end); got != want {
					t.Errorf("%s series = %q, want %q", metric, got, want)
				}
			}
			var rows int
			if err := b.DB.QueryRowContext(ctx, `SELECT count(*) FROM daily_metrics`).Scan(&rows); err != nil || rows != 6 {
				t.Fatalf("history table has %d rows (%v), want 6", rows, err)
			}
		})
	}
}

// The ladder's Tier 3 limit next to Tier 4's strength: between two snapshots, 3
// contacts are created and 2 deleted. The snapshot series moves by +1 and the 3 and
// the 2 are gone; the event log still has both.
func TestSnapshotShowsNetWhereEventsShowFlow(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			j := job(t, b, nil)
			if err := events.Migrate(ctx, b.DB, b.Dialect); err != nil {
				t.Fatal(err)
			}
			defs, err := eventlog.Ladder()
			if err != nil {
				t.Fatal(err)
			}
			log := &eventlog.Log{Dialect: b.Dialect, Defs: defs}
			emit := func(name, id string, at time.Time) {
				t.Helper()
				p, _ := json.Marshal(map[string]string{"contact_id": id})
				if _, _, err := log.Emit(ctx, b.DB, events.Event{Name: name, Version: 1, OccurredAt: at, Payload: p}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 10 {
				exec(t, b, `INSERT INTO contacts VALUES (?, ?)`, fmt.Sprint("old", i), b.Dialect.Time(day1.AddDate(0, -1, 0)))
			}
			if err := j.Run(ctx, day1); err != nil {
				t.Fatal(err)
			}
			during := day1.Add(9 * time.Hour)
			for i := range 3 {
				id := fmt.Sprint("new", i)
				exec(t, b, `INSERT INTO contacts VALUES (?, ?)`, id, b.Dialect.Time(during))
				emit("contact_created", id, during)
			}
			for _, id := range []string{"old3", "new1"} {
				exec(t, b, `DELETE FROM contacts WHERE id = ?`, id)
				emit("contact_deleted", id, during.Add(time.Hour))
			}
			day2 := day1.AddDate(0, 0, 1)
			if err := j.Run(ctx, day2); err != nil {
				t.Fatal(err)
			}
			pts, err := j.Series(ctx, "contacts", day1, day2)
			if err != nil || len(pts) != 2 {
				t.Fatalf("series: %v %v", pts, err)
			}
			if delta := pts[1].Value - pts[0].Value; delta != 1 {
				t.Fatalf("snapshot delta = %+g, want +1", delta)
			}
			created, err1 := events.Count(ctx, b.DB, b.Dialect, events.Filter{Name: "contact_created", From: day1, To: day2})
			deleted, err2 := events.Count(ctx, b.DB, b.Dialect, events.Filter{Name: "contact_deleted", From: day1, To: day2})
			if err := errors.Join(err1, err2); err != nil || created != 3 || deleted != 2 {
				t.Fatalf("event log: created %d, deleted %d (%v), want 3 and 2", created, deleted, err)
			}
		})
	}
}

func TestMissedRunsAndBackfill(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			now := day1
			j := job(t, b, &now)
			d := b.Dialect
			exec(t, b, `INSERT INTO jobs VALUES ('j1', 'open', 100, ?, NULL)`, d.Time(day1.Add(-time.Hour)))
			for _, day := range []int{0, 1, 4} { // runs on days 3 and 4 (index 2, 3) never happen
				at := day1.AddDate(0, 0, day)
				switch day {
				case 1:
					exec(t, b, `INSERT INTO jobs VALUES ('j2', 'open', 10, ?, NULL)`, d.Time(at.Add(-time.Hour)))
				case 4:
					// Between the missed runs: j3 opened on day 3 and j1 closed on day 4.
					exec(t, b, `INSERT INTO jobs VALUES ('j3', 'open', 5, ?, NULL)`, d.Time(day1.AddDate(0, 0, 2).Add(-time.Hour)))
					exec(t, b, `UPDATE jobs SET state = 'won', closed_at = ? WHERE id = 'j1'`, d.Time(day1.AddDate(0, 0, 3).Add(-time.Hour)))
				}
				if err := j.Run(ctx, at); err != nil {
					t.Fatal(err)
				}
			}
			last := day1.AddDate(0, 0, 4)
			gaps, err := j.Missed(ctx, day1, last)
			if err != nil {
				t.Fatal(err)
			}
			all := []string{"contacts", "open_jobs", "pipeline_cents"}
			want := []snapshot.Gap{{AsOf: day1.AddDate(0, 0, 2), Metrics: all}, {AsOf: day1.AddDate(0, 0, 3), Metrics: all}}
			if fmt.Sprint(gaps) != fmt.Sprint(want) {
				t.Fatalf("missed = %v, want %v", gaps, want)
			}
			rep, err := j.Backfill(ctx, day1, last)
			if err != nil {
				t.Fatal(err)
			}
			wantRep := snapshot.Report{
				Filled: []snapshot.Gap{{AsOf: want[0].AsOf, Metrics: []string{"open_jobs"}}, {AsOf: want[1].AsOf, Metrics: []string{"open_jobs"}}},
				Holes:  []snapshot.Gap{{AsOf: want[0].AsOf, Metrics: []string{"contacts", "pipeline_cents"}}, {AsOf: want[1].AsOf, Metrics: []string{"contacts", "pipeline_cents"}}},
			}
			if fmt.Sprint(rep) != fmt.Sprint(wantRep) {
				t.Fatalf("backfill = %+v, want %+v", rep, wantRep)
			}
			// Reconstructed from opened_at/closed_at: day 3 has j1, j2, j3; day 4 has j2, j3.
			if got, want := values(t, j, "open_jobs", day1, last), "03-01=1 03-02=2 03-03=3* 03-04=2* 03-05=2 "; got != want {
				t.Fatalf("open_jobs after backfill = %q, want %q", got, want)
			}
			if got, want := values(t, j, "contacts", day1, last), "03-01=0 03-02=0 03-05=0 "; got != want {
				t.Fatalf("contacts after backfill = %q, want %q (holes stay holes)", got, want)
			}
			gaps, err = j.Missed(ctx, day1, last)
			if err != nil || len(gaps) != 2 || len(gaps[0].Metrics) != 2 {
				t.Fatalf("after backfill the holes remain: %v %v", gaps, err)
			}

			// CatchUp from a job that was down for two days: backfills then runs today.
			now = day1.AddDate(0, 0, 7).Add(5 * time.Minute)
			rep, err = j.CatchUp(ctx, 30)
			if err != nil || len(rep.Filled) != 2 || len(rep.Holes) != 2 {
				t.Fatalf("catch up: %+v %v", rep, err)
			}
			if got, want := values(t, j, "open_jobs", day1.AddDate(0, 0, 5), now), "03-06=2* 03-07=2* 03-08=2 "; got != want {
				t.Fatalf("open_jobs after catch-up = %q, want %q", got, want)
			}
		})
	}
}

func TestLoopRunsEverySlotAndStops(t *testing.T) {
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			j := job(t, b, nil)
			j.Every = 20 * time.Millisecond
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- j.Loop(ctx) }()
			harness.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
				var n int
				if err := b.DB.QueryRow(`SELECT count(DISTINCT as_of) FROM daily_metrics`).Scan(&n); err != nil {
					return err
				}
				if n < 3 {
					return fmt.Errorf("%d slots recorded, want 3", n)
				}
				return nil
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("loop returned %v", err)
			}
			// Every slot from the first to the last is present: late ticks were caught up.
			first, last := time.Time{}, time.Time{}
			var f, l sqldb.Time
			if err := b.DB.QueryRow(`SELECT min(as_of), max(as_of) FROM daily_metrics`).Scan(&f, &l); err != nil {
				t.Fatal(err)
			}
			first, last = f.Time, l.Time
			gaps, err := j.Missed(context.Background(), first, last)
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range gaps {
				if len(g.Metrics) != 2 || g.Metrics[0] != "contacts" {
					t.Fatalf("loop left an unexpected gap %v", g)
				}
			}
		})
	}
}

func TestBadJobs(t *testing.T) {
	b := sqltest.SQLite(t)
	ok := snapshot.Metric{Name: "m", Live: live.Count("t")}
	for _, j := range []*snapshot.Job{
		{DB: b.DB, Dialect: b.Dialect, Table: "h", Every: time.Hour},
		{DB: b.DB, Dialect: b.Dialect, Table: "h h", Every: time.Hour, Metrics: []snapshot.Metric{ok}},
		{DB: b.DB, Dialect: b.Dialect, Table: "h", Every: 0, Metrics: []snapshot.Metric{ok}},
		{DB: b.DB, Dialect: b.Dialect, Table: "h", Every: time.Hour, Metrics: []snapshot.Metric{ok, ok}},
		{DB: b.DB, Dialect: b.Dialect, Table: "h", Every: time.Hour, Metrics: []snapshot.Metric{{Name: "x", Live: live.Count("t;")}}},
		{DB: b.DB, Dialect: "mysql", Table: "h", Every: time.Hour, Metrics: []snapshot.Metric{ok}},
	} {
		if err := j.Migrate(context.Background()); !errors.Is(err, snapshot.ErrDecl) {
			t.Errorf("%+v: %v, want ErrDecl", j, err)
		}
	}
}
