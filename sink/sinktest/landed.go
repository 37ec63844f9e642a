package sinktest

import (
	"context"
	"fmt"
	"testing"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Lander is a Store that says which of some signals it already holds: what an aggregator
// asks of a batch JetStream redelivered.
type Lander interface {
	Landed(ctx context.Context, signals []schemas.Signal) (map[sink.Key]bool, error)
}

func landed(t *testing.T, s Store) {
	l, ok := s.(Lander)
	if !ok {
		t.Fatalf("%T does not say which signals it holds (Landed)", s)
	}
	ctx := context.Background()
	var held []schemas.Signal
	for i := range 1200 { // more than one chunk of ids
		held = append(held, signal(i))
	}
	if err := s.Write(ctx, &sink.Batch{Signals: held}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	ask := append([]schemas.Signal(nil), held[10:1100]...)
	for i := range ask {
		ask[i].ReceivedAt += 5 * 3600_000 // a client's resend, hours later
	}
	var never []schemas.Signal
	for i := range 5 {
		g := signal(2000 + i)
		g.AnonymousID = fmt.Sprintf("stranger-%d", i)
		// A stored event_id under another visitor is another signal.
		other := held[i]
		other.AnonymousID = fmt.Sprintf("stranger-%d", i)
		never = append(never, g, signal(3000+i), other)
	}
	ask = append(ask, never...)
	got, err := l.Landed(ctx, ask)
	if err != nil {
		t.Fatalf("Landed: %v", err)
	}
	if len(got) != 1090 {
		t.Errorf("Landed: %d ids, want 1090", len(got))
	}
	for _, g := range held[10:1100] {
		if !got[sink.KeyOf(&g)] {
			t.Fatalf("Landed misses %s", g.EventID)
		}
	}
	for _, g := range never {
		if got[sink.KeyOf(&g)] {
			t.Errorf("Landed names %s of %s, which was never written", g.EventID, g.AnonymousID)
		}
	}
	if got, err := l.Landed(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("Landed(nil) = %v, %v", got, err)
	}
}
