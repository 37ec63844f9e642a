package sqlite

import (
	"context"
	"fmt"
	"strings"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// landedChunk bounds the parameters of one lookup, well under SQLite's limit.
const landedChunk = 400

// Landed returns the keys of the signals the store already holds, each true (a write
// here is one transaction: whatever holds the raw rows holds the rollups): an
// aggregator asks it of every batch, which may hold a redelivery or a client's resend.
// It looks each visitor up by index, from sink.ResendWindow before the earliest
// signal's time.
func (s *SQLite) Landed(ctx context.Context, signals []schemas.Signal) (map[sink.Key]bool, error) {
	out := make(map[sink.Key]bool)
	if len(signals) == 0 {
		return out, nil
	}
	want := make(map[sink.Key]bool, len(signals))
	anons := make(map[string]bool)
	since := signals[0].ReceivedAt
	for i := range signals {
		want[sink.KeyOf(&signals[i])] = true
		anons[signals[i].AnonymousID] = true
		since = min(since, signals[i].ReceivedAt)
	}
	since -= sink.ResendWindow
	ids := make([]any, 0, landedChunk+1)
	for a := range anons {
		ids = append(ids, a)
		if len(ids) == landedChunk {
			if err := s.landed(ctx, ids, since, want, out); err != nil {
				return nil, err
			}
			ids = ids[:0]
		}
	}
	if len(ids) > 0 {
		if err := s.landed(ctx, ids, since, want, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *SQLite) landed(ctx context.Context, anons []any, since int64, want, out map[sink.Key]bool) error {
	q := "SELECT anonymous_id, event_id FROM signals WHERE anonymous_id IN (?" + strings.Repeat(",?", len(anons)-1) + ") AND received_ms >= ?"
	rows, err := s.db.QueryContext(ctx, q, append(anons, since)...)
	if err != nil {
		return fmt.Errorf("look up %d visitors' landed signals: %w", len(anons), err)
	}
	defer rows.Close()
	for rows.Next() {
		var k sink.Key
		if err := rows.Scan(&k.AnonymousID, &k.EventID); err != nil {
			return fmt.Errorf("scan a landed event_id: %w", err)
		}
		if want[k] {
			out[k] = true
		}
	}
	return rows.Err()
}
