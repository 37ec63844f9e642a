package live_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
	"github.com/rungdev/rung/tiers/eventlog"
	"github.com/rungdev/rung/tiers/live"
)

var (
	march = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	april = march.AddDate(0, 1, 0)
)

func exec(t testing.TB, b sqltest.Backend, q string, args ...any) {
	t.Helper()
	if _, err := b.DB.ExecContext(context.Background(), b.Dialect.Rebind(q), args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func schema(t testing.TB, b sqltest.Backend) {
	t.Helper()
	exec(t, b, `CREATE TABLE contacts (id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at `+b.Dialect.TimeType()+` NOT NULL)`)
	exec(t, b, `CREATE TABLE jobs (id INTEGER PRIMARY KEY, contact_id TEXT NOT NULL, state TEXT NOT NULL, value_cents BIGINT NOT NULL)`)
}

func TestAggregates(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			schema(t, b)
			for i, st := range []string{"active", "active", "lost", "active"} {
				exec(t, b, `INSERT INTO contacts VALUES (?, ?, ?)`, fmt.Sprint("c", i), st, b.Dialect.Time(march.AddDate(0, 0, i*10)))
			}
			for i, j := range []struct {
				state string
				cents int
			}{{"open", 1000}, {"open", 2500}, {"won", 9999}, {"open", 500}} {
				exec(t, b, `INSERT INTO jobs VALUES (?, ?, ?, ?)`, i+1, "c0", j.state, j.cents)
			}
			cases := []struct {
				q    live.Query
				want float64
			}{
				{live.Count("contacts"), 4},
				{live.Count("contacts", live.Eq("status", "active")), 3},
				{live.Count("contacts", live.Ge("created_at", march), live.Lt("created_at", april)), 4},
				{live.Count("contacts", live.Ge("created_at", march.AddDate(0, 0, 15))), 2},
				{live.Sum("jobs", "value_cents", live.Eq("state", "open")), 4000},
				{live.Sum("jobs", "value_cents", live.Eq("state", "lost")), 0},
				{live.Query{Table: "jobs", Agg: live.MaxAgg, Column: "value_cents"}, 9999},
				{live.Query{Table: "jobs", Agg: live.AvgAgg, Column: "value_cents", Where: []live.Cond{live.Eq("state", "open")}}, 4000.0 / 3},
			}
			for _, c := range cases {
				got, err := c.q.Run(ctx, b.DB, b.Dialect)
				if err != nil || got != c.want {
					t.Errorf("%+v = %v (%v), want %v", c.q, got, err, c.want)
				}
			}
		})
	}
}

func TestCheckNamesTheMissingIndex(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			schema(t, b)
			active := live.Count("contacts", live.Eq("status", "active"))
			err := active.Check(ctx, b.DB, b.Dialect)
			var mi *live.MissingIndexError
			if !errors.As(err, &mi) || !errors.Is(err, live.ErrMissingIndex) {
				t.Fatalf("check before the index: %v, want a MissingIndexError", err)
			}
			if want := "CREATE INDEX contacts_status_idx ON contacts (status)"; !strings.Contains(err.Error(), want) ||
				len(mi.Columns) != 1 || mi.Columns[0] != "status" {
				t.Fatalf("error %q does not name the index %q", err, want)
			}
			// Apply exactly what the error says; the check then passes.
			for _, ddl := range mi.DDL() {
				exec(t, b, ddl)
			}
			if err := active.Check(ctx, b.DB, b.Dialect); err != nil {
				t.Fatalf("check after adding the named index: %v", err)
			}

			// A composite index serves its second column only behind an equality on the first.
			exec(t, b, `CREATE INDEX jobs_state_value ON jobs (state, value_cents)`)
			cases := []struct {
				q       live.Query
				missing []string
			}{
				{live.Count("jobs", live.Eq("state", "open"), live.Ge("value_cents", 100)), nil},
				{live.Count("jobs", live.Ge("value_cents", 100)), []string{"value_cents"}},
				{live.Count("jobs", live.Ge("state", "a"), live.Ge("value_cents", 100)), []string{"value_cents"}},
				{live.Count("jobs", live.Eq("id", 3)), nil}, // INTEGER PRIMARY KEY / pkey
				{live.Sum("jobs", "value_cents", live.Eq("contact_id", "c1"), live.Eq("state", "open")), []string{"contact_id"}},
			}
			for _, c := range cases {
				err := c.q.Check(ctx, b.DB, b.Dialect)
				if c.missing == nil {
					if err != nil {
						t.Errorf("%+v: %v, want served", c.q, err)
					}
					continue
				}
				if !errors.As(err, &mi) || fmt.Sprint(mi.Columns) != fmt.Sprint(c.missing) {
					t.Errorf("%+v: %v, want missing %v", c.q, err, c.missing)
				}
			}
		})
	}
}

func TestBadQueries(t *testing.T) {
	ctx := context.Background()
	b := sqltest.SQLite(t)
	schema(t, b)
	for _, q := range []live.Query{
		{Table: "contacts", Agg: "median", Column: "x"},
		{Table: "contacts; drop table contacts", Agg: live.CountAgg},
		{Table: "contacts", Agg: live.SumAgg},
		live.Count("contacts", live.Cond{Column: "status", Op: "LIKE", Value: "a%"}),
		live.Count("contacts", live.Eq("1=1 or status", "x")),
	} {
		if _, err := q.Run(ctx, b.DB, b.Dialect); !errors.Is(err, live.ErrQuery) {
			t.Errorf("%+v: run err %v, want ErrQuery", q, err)
		}
	}
	if err := live.Count("nope", live.Eq("a", 1)).Check(ctx, b.DB, b.Dialect); !errors.Is(err, live.ErrQuery) || !strings.Contains(err.Error(), `no table "nope"`) {
		t.Errorf("check of a missing table: %v", err)
	}
}

// The ladder's hard limit of Tier 1: deletes erase the past. Five contacts were created
// in March; after two are deleted, the live query can only say three, while the event
// log (Tier 4) still says five.
func TestCannotAnswerLastMarchAfterDeletes(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			schema(t, b)
			if err := events.Migrate(ctx, b.DB, b.Dialect); err != nil {
				t.Fatal(err)
			}
			defs, err := eventlog.Ladder()
			if err != nil {
				t.Fatal(err)
			}
			log := &eventlog.Log{Dialect: b.Dialect, Defs: defs}
			for i := range 5 {
				at := march.AddDate(0, 0, 3*i+1)
				id := fmt.Sprint("c", i)
				exec(t, b, `INSERT INTO contacts VALUES (?, 'active', ?)`, id, b.Dialect.Time(at))
				p, _ := json.Marshal(map[string]string{"contact_id": id})
				if _, _, err := log.Emit(ctx, b.DB, events.Event{Name: "contact_created", Version: 1, OccurredAt: at, Payload: p}); err != nil {
					t.Fatal(err)
				}
			}
			createdInMarch := live.Count("contacts", live.Ge("created_at", march), live.Lt("created_at", april))
			before, err := createdInMarch.Run(ctx, b.DB, b.Dialect)
			if err != nil || before != 5 {
				t.Fatalf("before deletes: %v (%v), want 5", before, err)
			}
			exec(t, b, `DELETE FROM contacts WHERE id IN ('c1', 'c3')`)
			after, err := createdInMarch.Run(ctx, b.DB, b.Dialect)
			if err != nil {
				t.Fatal(err)
			}
			if after != 3 {
				t.Fatalf("live count of March after 2 deletes = %v, want 3: Tier 1 only knows now", after)
			}
			logged, err := events.Count(ctx, b.DB, b.Dialect, events.Filter{Name: "contact_created", From: march, To: april})
			if err != nil || logged != 5 {
				t.Fatalf("event log count of March = %d (%v), want 5", logged, err)
			}
		})
	}
}
