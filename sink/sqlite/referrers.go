package sqlite

import (
	"context"
	"fmt"

	"github.com/rungdev/rung/sink"
)

// Referrers counts a path's pageviews by referrer, most first (ties by referrer), from
// the raw signals.
func (s *SQLite) Referrers(ctx context.Context, f sink.ReferrerFilter) ([]sink.ReferrerCount, error) {
	where, args := "type = 'pageview' AND bot = 0 AND path = ? AND received_ms >= ? AND received_ms < ?", []any{f.Path, f.FromMs, f.ToMs}
	if f.Site != "" {
		where += " AND site = ?"
		args = append(args, f.Site)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT referrer, count(DISTINCT event_id) AS n FROM signals WHERE `+where+`
		GROUP BY referrer ORDER BY n DESC, referrer LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("query referrers of %q: %w", f.Path, err)
	}
	defer rows.Close()
	return sink.ScanReferrers(rows)
}
