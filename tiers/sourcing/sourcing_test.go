package sourcing_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rungdev/rung/stitch/sqldb/sqltest"
	"github.com/rungdev/rung/tiers/sourcing"
)

type Deal struct {
	Stage       string `json:"stage"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Closed      bool   `json:"closed"`
	Won         bool   `json:"won"`
}

type opened struct {
	Stage  string `json:"stage"`
	Amount struct {
		Cents    int64  `json:"cents"`
		Currency string `json:"currency"`
	} `json:"amount"`
}

// dealOpenedV1toV2: v1 carried amount_cents in dollars-only days; v2 nests the amount
// with its currency.
var dealOpenedV1toV2 = sourcing.Upcaster{Type: "deal_opened", From: 1, Up: func(data json.RawMessage) (json.RawMessage, error) {
	var v1 struct {
		Stage       string `json:"stage"`
		AmountCents int64  `json:"amount_cents"`
	}
	if err := json.Unmarshal(data, &v1); err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"stage": v1.Stage, "amount": map[string]any{"cents": v1.AmountCents, "currency": "USD"}})
}}

// dealProjection is the deal's state machine. With buggy set, an amount change
// replaces the amount instead of adding to it: the bug a later fix corrects.
func dealProjection(version int, buggy bool, every int64) sourcing.Projection[Deal] {
	return sourcing.Projection[Deal]{Name: "deal", Version: version, SnapshotEvery: every,
		Init: func() Deal { return Deal{} },
		Apply: func(d Deal, r sourcing.Record) (Deal, error) {
			switch r.Type {
			case "deal_opened":
				if r.SchemaVersion != 2 {
					return d, fmt.Errorf("deal_opened v%d not upcast", r.SchemaVersion)
				}
				o, err := sourcing.Decode[opened](r)
				if err != nil {
					return d, err
				}
				d.Stage, d.AmountCents, d.Currency = o.Stage, o.Amount.Cents, o.Amount.Currency
			case "deal_amount_changed":
				c, err := sourcing.Decode[struct {
					DeltaCents int64 `json:"delta_cents"`
				}](r)
				if err != nil {
					return d, err
				}
				if buggy {
					d.AmountCents = c.DeltaCents
				} else {
					d.AmountCents += c.DeltaCents
				}
			case "deal_stage_changed":
				c, err := sourcing.Decode[struct {
					Stage string `json:"stage"`
				}](r)
				if err != nil {
					return d, err
				}
				d.Stage = c.Stage
			case "deal_closed":
				c, err := sourcing.Decode[struct {
					Won bool `json:"won"`
				}](r)
				if err != nil {
					return d, err
				}
				d.Closed, d.Won = true, c.Won
			default:
				return d, fmt.Errorf("unknown event %s", r.Type)
			}
			return d, nil
		}}
}

func ev(typ string, at time.Time, data string) sourcing.Event {
	return sourcing.Event{Type: typ, OccurredAt: at, Data: json.RawMessage(data)}
}

func store(t testing.TB, b sqltest.Backend) *sourcing.Store {
	t.Helper()
	s, err := sourcing.New(b.DB, b.Dialect, dealOpenedV1toV2)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("second migrate must be a no-op: %v", err)
	}
	return s
}

var mar = func(day int) time.Time { return time.Date(2026, 3, day, 12, 0, 0, 0, time.UTC) }

func TestAppendRejectsStaleVersion(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := store(t, b)
			open := ev("deal_opened", mar(1), `{"stage":"new","amount":{"cents":1000,"currency":"EUR"}}`)
			open.SchemaVersion = 2
			if v, err := s.Append(ctx, "deal-1", 0, open); err != nil || v != 1 {
				t.Fatalf("first append: %d %v", v, err)
			}
			// A writer that read the stream before that append.
			_, err := s.Append(ctx, "deal-1", 0, ev("deal_stage_changed", mar(2), `{"stage":"demo"}`))
			var ce *sourcing.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, sourcing.ErrConflict) || ce.Expected != 0 || ce.Actual != 1 {
				t.Fatalf("stale append: %v, want a conflict at 0 vs 1", err)
			}
			// Racing writers at the same version: exactly one wins.
			const n = 8
			var wg sync.WaitGroup
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = s.Append(ctx, "deal-1", 1, ev("deal_amount_changed", mar(3), fmt.Sprintf(`{"delta_cents":%d}`, i+1)))
				}()
			}
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, sourcing.ErrConflict):
					t.Fatalf("racing append failed other than by conflict: %v", err)
				}
			}
			if won != 1 {
				t.Fatalf("%d racing appends at version 1 succeeded, want exactly 1", won)
			}
			if v, err := s.Version(ctx, "deal-1"); err != nil || v != 2 {
				t.Fatalf("stream version %d (%v), want 2", v, err)
			}
			if v, err := s.Append(ctx, "deal-1", sourcing.Any, ev("deal_closed", mar(4), `{"won":true}`)); err != nil || v != 3 {
				t.Fatalf("append without a version check: %d %v", v, err)
			}
		})
	}
}

func TestStreamIsAppendOnly(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := store(t, b)
			if _, err := s.Append(ctx, "deal-1", 0, ev("deal_closed", mar(1), `{"won":false}`)); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{`UPDATE stream_events SET data = '{"won":true}'`, `DELETE FROM stream_events`} {
				_, err := b.DB.ExecContext(ctx, q)
				if err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Errorf("%s: %v, want refused as append-only", q, err)
				}
			}
			if v, _ := s.Version(ctx, "deal-1"); v != 1 {
				t.Fatalf("stream changed: version %d", v)
			}
		})
	}
}

func TestAppendRejectsMalformed(t *testing.T) {
	ctx := context.Background()
	b := sqltest.SQLite(t)
	s := store(t, b)
	for _, c := range []struct {
		stream string
		evs    []sourcing.Event
		want   string
	}{
		{"", []sourcing.Event{ev("x", mar(1), `{}`)}, "stream id"},
		{"s", nil, "no events"},
		{"s", []sourcing.Event{ev("Bad Type", mar(1), `{}`)}, "type"},
		{"s", []sourcing.Event{ev("x", mar(1), `[]`)}, "not a JSON object"},
		{"s", []sourcing.Event{ev("x", mar(1), `{}`), ev("x", mar(1), `{`)}, "event 1 (x) data"},
	} {
		_, err := s.Append(ctx, c.stream, sourcing.Any, c.evs...)
		if !errors.Is(err, sourcing.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q %v: %v, want ErrInvalid mentioning %q", c.stream, c.evs, err, c.want)
		}
	}
	if v, _ := s.Version(ctx, "s"); v != 0 {
		t.Fatalf("a malformed batch half-wrote: version %d", v)
	}
	if _, err := sourcing.New(b.DB, b.Dialect, dealOpenedV1toV2, dealOpenedV1toV2); !errors.Is(err, sourcing.ErrInvalid) {
		t.Fatalf("duplicate upcaster: %v", err)
	}
}

// history writes a deal's life: opened 1 March (as a v1 event, from before the schema
// change), grown twice in March, to proposal in April, won in April.
func history(t testing.TB, s *sourcing.Store) {
	t.Helper()
	open := ev("deal_opened", mar(1), `{"stage":"new","amount_cents":100000}`)
	open.SchemaVersion = 1
	evs := []sourcing.Event{
		open,
		ev("deal_amount_changed", mar(10), `{"delta_cents":25000}`),
		ev("deal_stage_changed", mar(15), `{"stage":"demo"}`),
		ev("deal_amount_changed", mar(20), `{"delta_cents":-5000}`),
		ev("deal_stage_changed", mar(31).AddDate(0, 0, 5), `{"stage":"proposal"}`),
		ev("deal_closed", mar(31).AddDate(0, 0, 12), `{"won":true}`),
	}
	var v int64
	for _, e := range evs {
		var err error
		if v, err = s.Append(context.Background(), "deal-7", v, e); err != nil {
			t.Fatal(err)
		}
	}
}

// The ladder's Tier 5 promise: reconstruct any moment, and after fixing a projection,
// re-derive it cleanly.
func TestAsOfPastDateAndAfterProjectionFix(t *testing.T) {
	ctx := context.Background()
	endOfMarch := time.Date(2026, 3, 31, 23, 59, 59, 0, time.UTC)
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := store(t, b)
			history(t, s)

			buggy := dealProjection(1, true, 2)
			now, err := sourcing.Load(ctx, s, buggy, "deal-7")
			if err != nil {
				t.Fatal(err)
			}
			if want := (Deal{Stage: "proposal", AmountCents: -5000, Currency: "USD", Closed: true, Won: true}); now.Value != want {
				t.Fatalf("buggy projection now = %+v, want %+v (the bug)", now.Value, want)
			}
			// Snapshots of the buggy version exist now; a second load starts from one.
			again, err := sourcing.Load(ctx, s, buggy, "deal-7")
			if err != nil || again.Snapshot != 6 || again.Replayed != 0 || again.Value != now.Value {
				t.Fatalf("reload of the buggy projection: %+v %v", again, err)
			}

			fixed := dealProjection(2, false, 2)
			for _, c := range []struct {
				name string
				load func() (sourcing.State[Deal], error)
				want Deal
				snap int64
			}{
				{"now", func() (sourcing.State[Deal], error) { return sourcing.Load(ctx, s, fixed, "deal-7") },
					Deal{Stage: "proposal", AmountCents: 120000, Currency: "USD", Closed: true, Won: true}, 0},
				{"reload", func() (sourcing.State[Deal], error) { return sourcing.Load(ctx, s, fixed, "deal-7") },
					Deal{Stage: "proposal", AmountCents: 120000, Currency: "USD", Closed: true, Won: true}, 6},
				{"end of March", func() (sourcing.State[Deal], error) { return sourcing.AsOf(ctx, s, fixed, "deal-7", endOfMarch) },
					Deal{Stage: "demo", AmountCents: 120000, Currency: "USD"}, 4},
				{"12 March", func() (sourcing.State[Deal], error) { return sourcing.AsOf(ctx, s, fixed, "deal-7", mar(12)) },
					Deal{Stage: "new", AmountCents: 125000, Currency: "USD"}, 2},
				{"before it existed", func() (sourcing.State[Deal], error) {
					return sourcing.AsOf(ctx, s, fixed, "deal-7", mar(1).Add(-time.Hour))
				},
					Deal{}, 0},
			} {
				st, err := c.load()
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if st.Value != c.want || st.Snapshot != c.snap {
					t.Errorf("%s = %+v from snapshot %d, want %+v from snapshot %d", c.name, st.Value, st.Snapshot, c.want, c.snap)
				}
			}
			// The buggy projection, as of the same date, shows what was wrong.
			old, err := sourcing.AsOf(ctx, s, buggy, "deal-7", endOfMarch)
			if err != nil || old.Value.AmountCents != -5000 {
				t.Fatalf("buggy as-of: %+v %v", old, err)
			}
		})
	}
}

func TestSnapshotsBoundReplay(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := store(t, b)
			history(t, s) // 6 events
			p := dealProjection(1, false, 4)
			plain := dealProjection(1, false, 0)
			plain.Name = "deal_no_snapshots"
			check := func(snap int64, replayed int) {
				t.Helper()
				st, err := sourcing.Load(ctx, s, p, "deal-7")
				if err != nil {
					t.Fatal(err)
				}
				full, err := sourcing.Load(ctx, s, plain, "deal-7")
				if err != nil {
					t.Fatal(err)
				}
				if st.Snapshot != snap || st.Replayed != replayed || st.Value != full.Value || st.Version != full.Version {
					t.Fatalf("load = %+v, want snapshot %d, %d replayed, value %+v", st, snap, replayed, full.Value)
				}
			}
			check(0, 6)
			check(4, 2)
			v, _ := s.Version(ctx, "deal-7")
			for i := range 3 {
				var err error
				if v, err = s.Append(ctx, "deal-7", v, ev("deal_amount_changed", mar(31).AddDate(0, 1, i), `{"delta_cents":1}`)); err != nil {
					t.Fatal(err)
				}
			}
			check(4, 5) // folds 5..9, saving a snapshot at 8
			check(8, 1)
		})
	}
}

func TestUpcastOnRead(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			s := store(t, b)
			history(t, s)
			recs, err := s.Read(ctx, "deal-7", 0, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 6 || recs[0].SchemaVersion != 2 {
				t.Fatalf("read %d records, first at v%d; want 6, upcast to v2", len(recs), recs[0].SchemaVersion)
			}
			var o opened
			if err := json.Unmarshal(recs[0].Data, &o); err != nil || o.Amount.Cents != 100000 || o.Amount.Currency != "USD" {
				t.Fatalf("upcast data %s: %v", recs[0].Data, err)
			}
			// The stored event is untouched.
			var sv int
			var raw string
			if err := b.DB.QueryRowContext(ctx, `SELECT schema_version, data FROM stream_events WHERE version = 1`).Scan(&sv, &raw); err != nil {
				t.Fatal(err)
			}
			if sv != 1 || !strings.Contains(raw, "amount_cents") {
				t.Fatalf("stored event rewritten: v%d %s", sv, raw)
			}
			// A store without the upcaster hands the projection a v1 event, which it refuses.
			bare, err := sourcing.New(b.DB, b.Dialect)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sourcing.Load(ctx, bare, dealProjection(3, false, 0), "deal-7"); err == nil || !strings.Contains(err.Error(), "not upcast") {
				t.Fatalf("load without upcaster: %v", err)
			}
		})
	}
}
