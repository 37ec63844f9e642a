package eventlog_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
	"github.com/rungdev/rung/tiers/eventlog"
)

var march = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func setup(t *testing.T, b sqltest.Backend, rollups ...eventlog.Rollup) *eventlog.Log {
	t.Helper()
	ctx := context.Background()
	if err := events.Migrate(ctx, b.DB, b.Dialect); err != nil {
		t.Fatal(err)
	}
	if err := events.Migrate(ctx, b.DB, b.Dialect); err != nil {
		t.Fatalf("second migrate must be a no-op: %v", err)
	}
	for _, r := range rollups {
		if err := r.Migrate(ctx, b.DB, b.Dialect); err != nil {
			t.Fatal(err)
		}
	}
	defs, err := eventlog.Ladder()
	if err != nil {
		t.Fatal(err)
	}
	return &eventlog.Log{Dialect: b.Dialect, Defs: defs, Rollups: rollups}
}

func backends(t *testing.T) []sqltest.Backend { return sqltest.Backends(t) }

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestEmitValidatesAgainstSchema(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			log := setup(t, b)
			bad := []struct {
				name    string
				version int
				payload string
				want    error
			}{
				{"deal_closed", 1, `{"deal_id":"d1","lead_id":"l1","salesperson_id":"s1","source":"ads"}`, eventlog.ErrPayload},
				{"deal_closed", 1, `{"deal_id":"d1","lead_id":"l1","salesperson_id":"s1","source":"ads","amount_cents":"12"}`, eventlog.ErrPayload},
				{"deal_closed", 1, `{"deal_id":"d1","lead_id":"l1","salesperson_id":"s1","source":"ads","amount_cents":1,"extra":1}`, eventlog.ErrPayload},
				{"deal_closed", 9, `{}`, eventlog.ErrUndefined},
				{"deal_reopened", 1, `{}`, eventlog.ErrUndefined},
			}
			for _, c := range bad {
				_, _, err := log.Emit(ctx, b.DB, events.Event{Name: c.name, Version: c.version, OccurredAt: march,
					Payload: json.RawMessage(c.payload)})
				if !errors.Is(err, c.want) {
					t.Errorf("%s v%d %s: err %v, want %v", c.name, c.version, c.payload, err, c.want)
				}
			}
			if n, _ := events.Count(ctx, b.DB, b.Dialect, events.Filter{}); n != 0 {
				t.Fatalf("%d invalid events were written", n)
			}
			e, ok, err := log.Emit(ctx, b.DB, events.Event{Name: "deal_closed", Version: 1, OccurredAt: march,
				Payload: json.RawMessage(`{"deal_id":"d1","lead_id":"l1","salesperson_id":"s1","source":"ads","amount_cents":120000}`)})
			if err != nil || !ok {
				t.Fatalf("emit valid deal_closed: inserted=%v err=%v", ok, err)
			}
			if e.ID == "" || e.SubjectID != "d1" || e.Source != "ads" || e.Amount == nil || *e.Amount != 120000 {
				t.Fatalf("emit did not derive id, subject and promoted columns: %+v", e)
			}
		})
	}
}

// The ladder's Tier 4 promise: attribution is copied into the event, so editing the
// lead afterwards does not move the revenue to another source.
func TestAttributionSurvivesLaterEdit(t *testing.T) {
	ctx := context.Background()
	sales := eventlog.Rollup{Table: "sales_rollups", Event: "deal_closed", Bucket: sqldb.Month, By: "source"}
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			log := setup(t, b, sales)
			mustExec(t, b.DB, `CREATE TABLE leads (id TEXT PRIMARY KEY, source TEXT NOT NULL)`)
			mustExec(t, b.DB, `CREATE TABLE deals (id TEXT PRIMARY KEY, lead_id TEXT NOT NULL, state TEXT NOT NULL, total_cents BIGINT NOT NULL)`)
			mustExec(t, b.DB, b.Dialect.Rebind(`INSERT INTO leads VALUES (?, ?)`), "l1", "webinar")
			mustExec(t, b.DB, b.Dialect.Rebind(`INSERT INTO deals VALUES (?, ?, ?, ?)`), "d1", "l1", "open", 500000)

			closeDeal(t, b, log, "d1", march)
			// Months later someone "fixes" the lead's source.
			mustExec(t, b.DB, b.Dialect.Rebind(`UPDATE leads SET source = ? WHERE id = ?`), "google", "l1")

			rows, err := sales.Read(ctx, b.DB)
			if err != nil {
				t.Fatal(err)
			}
			want := []eventlog.Row{{Period: "2026-03", Dim: "webinar", Events: 1, Amount: 500000}}
			if fmt.Sprint(rows) != fmt.Sprint(want) {
				t.Fatalf("rollup after the edit = %v, want %v", rows, want)
			}
			// A live join (Tier 1 thinking) now credits the wrong source.
			var live string
			if err := b.DB.QueryRowContext(ctx, `SELECT l.source FROM deals d JOIN leads l ON l.id = d.lead_id WHERE d.state = 'won'`).Scan(&live); err != nil {
				t.Fatal(err)
			}
			if live != "google" {
				t.Fatalf("live join says %q; the test premise is broken", live)
			}
			if diffs, err := sales.Reconcile(ctx, b.DB, b.Dialect); err != nil || len(diffs) != 0 {
				t.Fatalf("reconcile after the edit: %v %v", diffs, err)
			}
		})
	}
}

// closeDeal is the ladder's close_deal!: update the row and emit, frozen, in one transaction.
func closeDeal(t *testing.T, b sqltest.Backend, log *eventlog.Log, deal string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	d := b.Dialect
	err := sqldb.InTx(ctx, b.DB, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, d.Rebind(`UPDATE deals SET state = 'won' WHERE id = ?`), deal); err != nil {
			return err
		}
		var lead, source string
		var cents int64
		if err := tx.QueryRowContext(ctx, d.Rebind(`SELECT d.lead_id, l.source, d.total_cents FROM deals d JOIN leads l ON l.id = d.lead_id WHERE d.id = ?`), deal).
			Scan(&lead, &source, &cents); err != nil {
			return err
		}
		payload, _ := json.Marshal(map[string]any{"deal_id": deal, "lead_id": lead, "salesperson_id": "rep-1",
			"source": source, "amount_cents": cents})
		_, _, err := log.Emit(ctx, tx, events.Event{Name: "deal_closed", Version: 1, OccurredAt: at, Payload: payload})
		return err
	})
	if err != nil {
		t.Fatalf("close deal %s: %v", deal, err)
	}
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestRollupRecomputeIsIdempotentAndReconcileCatchesBugs(t *testing.T) {
	ctx := context.Background()
	sales := eventlog.Rollup{Table: "sales_rollups", Event: "deal_closed", Bucket: sqldb.Month, By: "source"}
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			log := setup(t, b, sales)
			emit := func(id, source string, cents int, at time.Time) {
				t.Helper()
				p := fmt.Sprintf(`{"deal_id":%q,"lead_id":"l","salesperson_id":"s","source":%q,"amount_cents":%d}`, id, source, cents)
				if _, _, err := log.Emit(ctx, b.DB, events.Event{ID: "ev-" + id, Name: "deal_closed", Version: 1, OccurredAt: at, Payload: json.RawMessage(p)}); err != nil {
					t.Fatal(err)
				}
			}
			emit("d1", "ads", 100, march)
			emit("d2", "ads", 250, march.Add(48*time.Hour))
			emit("d3", "seo", 400, march)
			emit("d4", "seo", 50, march.AddDate(0, 1, 0))
			emit("d1", "ads", 100, march) // redelivered: same event_id, must not count twice
			// Another event name is not counted by this rollup.
			if _, _, err := log.Emit(ctx, b.DB, events.Event{Name: "contact_created", Version: 1, OccurredAt: march,
				Payload: json.RawMessage(`{"contact_id":"c1"}`)}); err != nil {
				t.Fatal(err)
			}
			want := []eventlog.Row{
				{Period: "2026-03", Dim: "ads", Events: 2, Amount: 350},
				{Period: "2026-03", Dim: "seo", Events: 1, Amount: 400},
				{Period: "2026-04", Dim: "seo", Events: 1, Amount: 50},
			}
			rows, err := sales.Read(ctx, b.DB)
			if err != nil || fmt.Sprint(rows) != fmt.Sprint(want) {
				t.Fatalf("incremental rollup = %v (%v), want %v", rows, err, want)
			}
			if diffs, err := sales.Reconcile(ctx, b.DB, b.Dialect); err != nil || len(diffs) != 0 {
				t.Fatalf("reconcile of a correct incremental rollup: %v %v", diffs, err)
			}
			for run := 1; run <= 2; run++ {
				diffs, err := sales.Recompute(ctx, b.DB, b.Dialect)
				if err != nil || len(diffs) != 0 {
					t.Fatalf("recompute run %d changed %v (%v), want nothing", run, diffs, err)
				}
			}

			// Bugs the incremental path can have: an event written around it, and a
			// group bumped twice.
			if _, err := events.Insert(ctx, b.DB, b.Dialect, events.Event{ID: "sneaky", Name: "deal_closed", Version: 1,
				OccurredAt: march, Source: "ads", Amount: ptr(5), Payload: json.RawMessage(`{}`)}); err != nil {
				t.Fatal(err)
			}
			mustExec(t, b.DB, `UPDATE sales_rollups SET events = events + 1 WHERE dim = 'seo' AND period = '2026-04'`)
			mustExec(t, b.DB, b.Dialect.Rebind(`INSERT INTO sales_rollups VALUES (?, ?, ?, ?)`), "2025-12", "ghost", 3, 9)
			diffs, err := sales.Reconcile(ctx, b.DB, b.Dialect)
			if err != nil {
				t.Fatal(err)
			}
			wantDiffs := []eventlog.Diff{
				{Period: "2025-12", Dim: "ghost", Table: eventlog.Row{Period: "2025-12", Dim: "ghost", Events: 3, Amount: 9}},
				{Period: "2026-03", Dim: "ads", Table: want[0], Events: eventlog.Row{Period: "2026-03", Dim: "ads", Events: 3, Amount: 355}},
				{Period: "2026-04", Dim: "seo", Table: eventlog.Row{Period: "2026-04", Dim: "seo", Events: 2, Amount: 50}, Events: want[2]},
			}
			if fmt.Sprint(diffs) != fmt.Sprint(wantDiffs) {
				t.Fatalf("reconcile found\n%v\nwant\n%v", diffs, wantDiffs)
			}
			fixed, err := sales.Recompute(ctx, b.DB, b.Dialect)
			if err != nil || fmt.Sprint(fixed) != fmt.Sprint(wantDiffs) {
				t.Fatalf("recompute fixed %v (%v), want %v", fixed, err, wantDiffs)
			}
			if again, err := sales.Recompute(ctx, b.DB, b.Dialect); err != nil || len(again) != 0 {
				t.Fatalf("rerun of recompute changed %v (%v)", again, err)
			}
			if diffs, err := sales.Reconcile(ctx, b.DB, b.Dialect); err != nil || len(diffs) != 0 {
				t.Fatalf("reconcile after recompute: %v %v", diffs, err)
			}
		})
	}
}

func ptr(f float64) *float64 { return &f }

func TestDefinitionsRejectBadDeclarations(t *testing.T) {
	schema := []byte(`{"type":"object"}`)
	cases := []struct {
		name string
		defs []eventlog.Definition
		want string
	}{
		{"duplicate", []eventlog.Definition{{Name: "a", Version: 1, Schema: schema}, {Name: "a", Version: 1, Schema: schema}}, "defined twice"},
		{"no schema", []eventlog.Definition{{Name: "a", Version: 1}}, "no schema"},
		{"bad promote", []eventlog.Definition{{Name: "a", Version: 1, Schema: schema, Promote: map[string]string{"price": "p"}}}, `cannot promote into "price"`},
		{"bad schema", []eventlog.Definition{{Name: "a", Version: 1, Schema: []byte(`{"type":"nope"}`)}}, "schema"},
		{"bad name", []eventlog.Definition{{Name: "A", Version: 1, Schema: schema}}, "lower_snake_case"},
	}
	for _, c := range cases {
		_, err := eventlog.NewDefinitions(c.defs...)
		if err == nil || !contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	ext := eventlog.Definition{Name: "lead_created", Version: 1, Subject: "lead_id",
		Validate: func(b []byte) error {
			if !json.Valid(b) {
				return errors.New("not json")
			}
			return nil
		}}
	defs, err := eventlog.Ladder(ext)
	if err != nil {
		t.Fatal(err)
	}
	if err := defs.Validate("lead_created", 1, []byte(`{"lead_id":"x"}`)); err != nil {
		t.Fatalf("external validator: %v", err)
	}
	if err := defs.Validate("lead_created", 1, []byte(`{`)); !errors.Is(err, eventlog.ErrPayload) {
		t.Fatalf("external validator failure: %v", err)
	}
}

func TestRollupRejectsBadDeclarations(t *testing.T) {
	b := sqltest.SQLite(t)
	for _, r := range []eventlog.Rollup{
		{Table: "x; drop", Event: "e", Bucket: sqldb.Day},
		{Table: "r", Event: "e", Bucket: "week"},
		{Table: "r", Event: "e", Bucket: sqldb.Day, By: "amount"},
		{Table: "r", Event: "e", Bucket: sqldb.Day, By: "payload"},
	} {
		if err := r.Migrate(context.Background(), b.DB, b.Dialect); !errors.Is(err, eventlog.ErrRollup) {
			t.Errorf("%+v: err %v, want ErrRollup", r, err)
		}
	}
}
