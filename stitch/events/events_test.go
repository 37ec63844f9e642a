package events_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
)

var march = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

// migrate creates the events table on b, twice: the second run must change nothing.
func migrate(t *testing.T, b sqltest.Backend) {
	t.Helper()
	ctx := context.Background()
	for i := range 2 {
		if err := events.Migrate(ctx, b.DB, b.Dialect); err != nil {
			t.Fatalf("migrate #%d: %v", i+1, err)
		}
	}
}

func TestInsertIsIdempotent(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			migrate(t, b)
			amount := 1250.5
			e := events.Event{ID: "ev-1", Name: "lead_created", Version: 1, OccurredAt: march,
				SubjectID: "lead-1", Source: "google", Medium: "cpc", Campaign: "spring",
				LandingPage: "/pricing", Variant: "b", Amount: &amount,
				Payload: json.RawMessage(`{"lead_id":"lead-1","anonymous_id":"a1"}`)}
			for i, want := range []bool{true, false, false} {
				err := sqldb.InTx(ctx, b.DB, func(tx *sql.Tx) error {
					got, err := events.Insert(ctx, tx, b.Dialect, e)
					if err == nil && got != want {
						err = fmt.Errorf("insert #%d: inserted=%v, want %v", i+1, got, want)
					}
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := events.List(ctx, b.DB, b.Dialect, events.Filter{SubjectID: "lead-1"})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("stored %d events, want 1", len(got))
			}
			g := got[0]
			if g.ID != e.ID || g.Name != e.Name || g.Version != 1 || !g.OccurredAt.Equal(march) ||
				g.Source != "google" || g.Medium != "cpc" || g.Campaign != "spring" || g.LandingPage != "/pricing" ||
				g.Variant != "b" || g.Amount == nil || *g.Amount != amount || g.RecordedAt.IsZero() {
				t.Fatalf("round trip changed the event: %+v", g)
			}
			var p map[string]string
			if err := json.Unmarshal(g.Payload, &p); err != nil || p["anonymous_id"] != "a1" {
				t.Fatalf("payload %s: %v", g.Payload, err)
			}
		})
	}
}

func TestInsertRejectsMalformed(t *testing.T) {
	ctx := context.Background()
	good := events.Event{ID: "e", Name: "deal_closed", Version: 1, OccurredAt: march}
	cases := []struct {
		name string
		edit func(*events.Event)
		want string
	}{
		{"no id", func(e *events.Event) { e.ID = "" }, "event_id is empty"},
		{"no name", func(e *events.Event) { e.Name = "" }, "name is empty"},
		{"bad name", func(e *events.Event) { e.Name = "Deal Closed" }, "not lower_snake_case"},
		{"version 0", func(e *events.Event) { e.Version = 0 }, "version 0"},
		{"no time", func(e *events.Event) { e.OccurredAt = time.Time{} }, "occurred_at is zero"},
		{"array payload", func(e *events.Event) { e.Payload = json.RawMessage(`[1]`) }, "not a JSON object"},
		{"broken payload", func(e *events.Event) { e.Payload = json.RawMessage(`{"a":`) }, "not a JSON object"},
	}
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			migrate(t, b)
			for _, c := range cases {
				e := good
				c.edit(&e)
				_, err := events.Insert(ctx, b.DB, b.Dialect, e)
				if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: err %v, want ErrInvalid mentioning %q", c.name, err, c.want)
				}
			}
			if n, _ := events.Count(ctx, b.DB, b.Dialect, events.Filter{}); n != 0 {
				t.Fatalf("%d malformed events were written", n)
			}
		})
	}
}

// FuzzEventCheck: an event Check accepts has a payload that is a JSON object (or empty).
func FuzzEventCheck(f *testing.F) {
	f.Add("ev-1", "deal_closed", 1, []byte(`{"a":1}`))
	f.Add("", "x", 0, []byte(`[`))
	f.Add("e", "Bad", 1, []byte(` {} `))
	f.Fuzz(func(t *testing.T, id, name string, version int, payload []byte) {
		e := events.Event{ID: id, Name: name, Version: version, OccurredAt: march, Payload: payload}
		if err := e.Check(); err != nil {
			return
		}
		p := bytes.TrimSpace(payload)
		if len(p) == 0 {
			return
		}
		var obj map[string]any
		if err := json.Unmarshal(p, &obj); err != nil {
			t.Fatalf("accepted payload %q is not a JSON object: %v", payload, err)
		}
	})
}
