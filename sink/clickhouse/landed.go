package clickhouse

import (
	"context"
	"fmt"
	"slices"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Landed returns the keys of the signals the store already holds, each with whether
// its rollups are stored too (counted.go): an aggregator asks it of every batch, which
// may hold a redelivery or a client's resend. The visitors and the days from
// sink.ResendWindow before the earliest signal narrow the read to a few granules of
// the (site, date, anonymous_id) order per day.
func (c *ClickHouse) Landed(ctx context.Context, signals []schemas.Signal) (map[sink.Key]bool, error) {
	if len(signals) == 0 {
		return map[sink.Key]bool{}, nil
	}
	held, since, err := c.held(ctx, dest{c.conn, c.db + ".signals"}, signals)
	if err != nil {
		return nil, err
	}
	return c.countedOf(ctx, held, day(since, -1))
}

// stored is what the signals table holds of a key: its earliest received_ms, and the
// flushes its raw rows carry (counted.go).
type stored struct {
	ms      int64
	flushes []uint64
}

// held returns the keys of the signals d's table holds, with what it holds of each,
// and the time the look-up started from. The keys go as an external table:
// thousands of literals in an IN list cost the server more to parse than to look up.
func (c *ClickHouse) held(ctx context.Context, d dest, signals []schemas.Signal) (map[sink.Key]stored, int64, error) {
	keys, err := ext.NewTable("landed_keys", ext.Column("anonymous_id", "String"), ext.Column("event_id", "String"))
	if err != nil {
		return nil, 0, err
	}
	var sites []any
	seen := make(map[string]bool)
	since := signals[0].ReceivedAt
	for i := range signals {
		g := &signals[i]
		if err := keys.Append(g.AnonymousID, g.EventID); err != nil {
			return nil, 0, fmt.Errorf("keep a key to look up: %w", err)
		}
		if !seen[g.Site] {
			seen[g.Site] = true
			sites = append(sites, g.Site)
		}
		since = min(since, g.ReceivedAt)
	}
	since -= sink.ResendWindow
	// site first, and the visitors: the (site, date, anonymous_id) key then prunes to
	// their granules.
	rows, err := d.conn.Query(ch.Context(ctx, ch.WithExternalTable(keys)),
		"SELECT anonymous_id, event_id, min(received_ms), groupUniqArray(flush) FROM "+d.table+" WHERE site IN @sites "+
			"AND date >= toDate(@day) AND received_ms >= @since AND anonymous_id IN (SELECT anonymous_id FROM landed_keys) "+
			"AND (anonymous_id, event_id) IN landed_keys GROUP BY anonymous_id, event_id",
		ch.Named("sites", ch.GroupSet{Value: sites}), ch.Named("day", day(since, -1)), ch.Named("since", since))
	if err != nil {
		return nil, 0, fmt.Errorf("look up %d landed signals: %w", len(signals), err)
	}
	defer rows.Close()
	held := make(map[sink.Key]stored)
	for rows.Next() {
		var (
			k sink.Key
			v stored
		)
		if err := rows.Scan(&k.AnonymousID, &k.EventID, &v.ms, &v.flushes); err != nil {
			return nil, 0, fmt.Errorf("scan a landed event_id: %w", err)
		}
		held[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("look up %d landed signals: %w", len(signals), err)
	}
	return held, since, nil
}

// missing returns the signals of b that fill takes for (shards, s) and d's table does
// not hold, with their sessions; and those it holds, but only in rows of other flushes
// than flush.
func (c *ClickHouse) missing(ctx context.Context, d dest, b *sink.Batch, flush uint64, shards []int, s int) (*sink.Batch, []schemas.Signal, error) {
	var part sink.Batch
	for i := range b.Signals {
		if shards == nil || shards[i] == s {
			part.Signals = append(part.Signals, b.Signals[i])
			part.SessionMs = append(part.SessionMs, b.SessionOf(i))
		}
	}
	if len(part.Signals) == 0 {
		return &part, nil, nil
	}
	held, _, err := c.held(ctx, d, part.Signals)
	if err != nil {
		return nil, nil, err
	}
	rest := sink.Batch{}
	var other []schemas.Signal
	for i := range part.Signals {
		v, ok := held[sink.KeyOf(&part.Signals[i])]
		switch {
		case !ok:
			rest.Signals = append(rest.Signals, part.Signals[i])
			rest.SessionMs = append(rest.SessionMs, part.SessionMs[i])
		case !slices.Contains(v.flushes, flush):
			other = append(other, part.Signals[i])
		}
	}
	return &rest, other, nil
}
