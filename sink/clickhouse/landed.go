package clickhouse

import (
	"context"
	"fmt"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Landed returns the keys of the signals the store already holds, each with whether
// its rollups are stored too (counted.go): an aggregator asks
// it of every batch, which may hold a redelivery or a client's resend. The visitors
// and the days from sink.ResendWindow before the earliest signal narrow the read to a
// few granules of the (site, date, anonymous_id) order per day.
func (c *ClickHouse) Landed(ctx context.Context, signals []schemas.Signal) (map[sink.Key]bool, error) {
	if len(signals) == 0 {
		return map[sink.Key]bool{}, nil
	}
	ids := make([]any, 0, len(signals))
	anons := make([]any, 0, len(signals))
	seen := make(map[string]bool)
	want := make(map[sink.Key]bool, len(signals))
	since := signals[0].ReceivedAt
	for i := range signals {
		g := &signals[i]
		ids = append(ids, g.EventID)
		want[sink.KeyOf(g)] = true
		if !seen[g.AnonymousID] {
			seen[g.AnonymousID] = true
			anons = append(anons, g.AnonymousID)
		}
		since = min(since, g.ReceivedAt)
	}
	since -= sink.ResendWindow
	rows, err := c.conn.Query(ctx, "SELECT anonymous_id, event_id, min(received_ms) FROM "+c.db+".signals WHERE date >= toDate(@day) "+
		"AND received_ms >= @since AND anonymous_id IN @anons AND event_id IN @ids GROUP BY anonymous_id, event_id",
		ch.Named("day", day(since, -1)), ch.Named("since", since), ch.Named("anons", ch.GroupSet{Value: anons}), ch.Named("ids", ch.GroupSet{Value: ids}))
	if err != nil {
		return nil, fmt.Errorf("look up %d landed signals: %w", len(signals), err)
	}
	defer rows.Close()
	held := make(map[sink.Key]int64)
	for rows.Next() {
		var (
			k  sink.Key
			ms int64
		)
		if err := rows.Scan(&k.AnonymousID, &k.EventID, &ms); err != nil {
			return nil, fmt.Errorf("scan a landed event_id: %w", err)
		}
		if want[k] { // the IN lists also match one visitor's row with another's event_id
			held[k] = ms
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up %d landed signals: %w", len(signals), err)
	}
	return c.countedOf(ctx, held, day(since, -1))
}
