package clickhouse

import (
	"context"
	"fmt"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/rungdev/rung/sink"
)

// Referrers counts a path's pageviews by referrer, most first (ties by referrer), from
// the raw signals; a signal stored twice counts once.
func (c *ClickHouse) Referrers(ctx context.Context, f sink.ReferrerFilter) ([]sink.ReferrerCount, error) {
	args := []any{ch.Named("path", f.Path), ch.Named("from", f.FromMs), ch.Named("to", f.ToMs),
		ch.Named("from_day", day(f.FromMs, -1)), ch.Named("to_day", day(f.ToMs, 1)), ch.Named("limit", uint64(max(f.Limit, 0)))}
	where := "type = 'pageview' AND bot = 0 AND path = @path AND received_ms >= @from AND received_ms < @to " +
		"AND date >= toDate(@from_day) AND date <= toDate(@to_day)"
	if f.Site != "" {
		where += " AND site = @site"
		args = append(args, ch.Named("site", f.Site))
	}
	rows, err := c.conn.Query(ctx, `SELECT referrer, toInt64(uniqExact(event_id)) AS n FROM `+c.db+`.signals WHERE `+where+`
		GROUP BY referrer ORDER BY n DESC, referrer LIMIT @limit`, args...)
	if err != nil {
		return nil, fmt.Errorf("query referrers of %q: %w", f.Path, err)
	}
	defer rows.Close()
	return sink.ScanReferrers(rows)
}
