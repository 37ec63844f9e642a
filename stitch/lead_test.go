package stitch

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/rungdev/rung/schemas"
)

func registry(t testing.TB) *schemas.Registry {
	t.Helper()
	r, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fullAttribution() Attribution {
	return Attribute(visitor, []schemas.Signal{
		exposure(-time.Minute, "hero", "b"),
		pv(0, "https://shop.example/pricing?utm_source=google", "/pricing", "https://www.google.com/", "google", "cpc", "spring", "shoes", "ad1"),
		pv(time.Hour, "https://shop.example/sale", "/sale", "https://news.example.org/x"),
	})
}

// Every lead_created the package makes validates against schemas/json/lead_created.v1.json.
func TestLeadCreatedMatchesSchema(t *testing.T) {
	reg := registry(t)
	amount := 1250.5
	cases := map[string]LeadCreated{
		"full":            NewLeadCreated("lead-1", fullAttribution(), t0.Add(2*time.Hour)),
		"unknown visitor": NewLeadCreated("lead-2", Attribution{AnonymousID: visitor}, t0),
		"no anonymous_id": NewLeadCreated("lead-3", Attribution{}, t0),
		"amount and currency": func() LeadCreated {
			l := NewLeadCreated("lead-4", fullAttribution(), t0)
			l.Amount, l.Currency = &amount, "EUR"
			return l
		}(),
		"zero amount": func() LeadCreated {
			z := 0.0
			l := NewLeadCreated("lead-5", Attribution{}, t0)
			l.Amount = &z
			return l
		}(),
	}
	for name, l := range cases {
		t.Run(name, func(t *testing.T) {
			ev, err := l.Event(reg)
			if err != nil {
				t.Fatal(err)
			}
			if err := reg.ValidateEvent("lead_created", ev.Payload); err != nil {
				t.Fatalf("payload %s fails the schema: %v", ev.Payload, err)
			}
			if ev.Name != EventLeadCreated || ev.Key != l.LeadID || ev.ID != l.EventID || !ev.OccurredAt.Equal(l.OccurredAt) {
				t.Fatalf("outbox event %+v", ev)
			}
		})
	}
}

// Event refuses exactly what the schema refuses, naming the field, before anything is written.
func TestLeadCreatedInvalid(t *testing.T) {
	reg := registry(t)
	nan, inf, neg, huge := math.NaN(), math.Inf(1), -1.0, 2e15
	tests := []struct {
		name  string
		edit  func(*LeadCreated)
		field string
	}{
		{"empty lead_id", func(l *LeadCreated) { l.LeadID = "" }, "lead_id"},
		{"long lead_id", func(l *LeadCreated) { l.LeadID = strings.Repeat("x", 101) }, "lead_id"},
		{"bad anonymous_id", func(l *LeadCreated) { l.AnonymousID = "short" }, "anonymous_id"},
		{"bad event_id", func(l *LeadCreated) { l.EventID = "has space in it" }, "event_id"},
		{"negative amount", func(l *LeadCreated) { l.Amount = &neg }, "amount"},
		{"huge amount", func(l *LeadCreated) { l.Amount = &huge }, "amount"},
		{"NaN amount", func(l *LeadCreated) { l.Amount = &nan }, "amount"},
		{"infinite amount", func(l *LeadCreated) { l.Amount = &inf }, "amount"},
		{"too many variants", func(l *LeadCreated) {
			for i := range 51 {
				l.Variants[fmt.Sprintf("exp-%02d", i)] = "a"
			}
		}, "variants"},
		{"bad currency", func(l *LeadCreated) { l.Currency = "eur" }, "currency"},
		{"no time", func(l *LeadCreated) { l.OccurredAt = time.Time{} }, "occurred_at"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLeadCreated("lead-1", fullAttribution(), t0)
			tc.edit(&l)
			_, err := l.Event(reg)
			if !errors.Is(err, ErrInvalidLead) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Event() = %v, want ErrInvalidLead naming %s", err, tc.field)
			}
			t.Log(err)
			if tc.name == "NaN amount" || tc.name == "infinite amount" || tc.name == "no time" {
				return // not representable in JSON as the schema sees it
			}
			doc, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			if reg.ValidateEvent("lead_created", doc) == nil {
				t.Fatalf("the schema accepts what Validate refuses: %s", doc)
			}
		})
	}
}

// The event is a copy: changing the attribution (or its map) after making the event, or
// the event struct after freezing it, does not reach the payload already made.
func TestLeadCreatedIsFrozen(t *testing.T) {
	a := fullAttribution()
	l := NewLeadCreated("lead-1", a, t0)
	a.Variants["hero"] = "changed"
	a.LastTouch.Source = "changed"
	ev, err := l.Event(registry(t))
	if err != nil {
		t.Fatal(err)
	}
	l.LeadID, l.Variants["hero"] = "edited", "edited"
	var p struct {
		LeadID    string            `json:"lead_id"`
		Variants  map[string]string `json:"variants"`
		LastTouch Touch             `json:"last_touch"`
	}
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.LeadID != "lead-1" || p.Variants["hero"] != "b" || p.LastTouch.Referrer != "https://news.example.org/x" {
		t.Fatalf("payload moved after it was made: %s", ev.Payload)
	}
}
