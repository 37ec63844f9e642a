package eventlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/tiers/eventlog"
)

// lead_created is defined in package schemas; the log validates it through that
// registry, so there is one schema for it in rung.
func TestEmitValidatesThroughSchemasRegistry(t *testing.T) {
	ctx := context.Background()
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defs, err := eventlog.Ladder(eventlog.Definition{Name: "lead_created", Version: 1, Subject: "lead_id",
		Promote:  map[string]string{"landing_page": "landing_page"},
		Validate: func(b []byte) error { return reg.ValidateEvent("lead_created", b) }})
	if err != nil {
		t.Fatal(err)
	}
	good := json.RawMessage(`{"event_id":"0b7c6f0e-55d4-4a53-9d3a-4c1f5e2a9b10","occurred_at":"2026-03-10T12:00:00Z",
		"lead_id":"lead-1","anonymous_id":"","landing_page":"/pricing"}`)
	bad := json.RawMessage(`{"event_id":"0b7c6f0e-55d4-4a53-9d3a-4c1f5e2a9b11","occurred_at":"2026-03-10T12:00:00Z","anonymous_id":""}`)
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			log := setup(t, b)
			log.Defs = defs
			if _, _, err := log.Emit(ctx, b.DB, events.Event{Name: "lead_created", Version: 1, OccurredAt: march, Payload: bad}); !errors.Is(err, eventlog.ErrPayload) {
				t.Fatalf("lead_created without lead_id: %v, want ErrPayload", err)
			}
			e, ok, err := log.Emit(ctx, b.DB, events.Event{ID: "0b7c6f0e-55d4-4a53-9d3a-4c1f5e2a9b10", Name: "lead_created",
				Version: 1, OccurredAt: march, Payload: good})
			if err != nil || !ok || e.SubjectID != "lead-1" || e.LandingPage != "/pricing" {
				t.Fatalf("valid lead_created: %+v inserted=%v %v", e, ok, err)
			}
		})
	}
}
