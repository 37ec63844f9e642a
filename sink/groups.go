package sink

import (
	"fmt"
	"slices"
)

// LandingColumns are the columns of the landing-page rollup a breakdown can group by.
var LandingColumns = []string{"site", "landing_path", "utm_source", "utm_medium", "utm_campaign"}

// CheckColumns refuses a grouping that is empty or names a column not in
// LandingColumns: the sinks put the names into SQL.
func CheckColumns(by []string) error {
	if len(by) == 0 {
		return fmt.Errorf("group the landing rollup by at least one column")
	}
	for _, c := range by {
		if !slices.Contains(LandingColumns, c) {
			return fmt.Errorf("cannot group the landing rollup by %q", c)
		}
	}
	return nil
}

// GroupCount is the sessions and converting sessions of one group of sessions: Keys
// holds its value of each column grouped by, in order.
type GroupCount struct {
	Keys      []string
	Sessions  int64
	Converted int64
}

// SeriesCount is the sessions that started in one time bucket, [StartMs, StartMs +
// step), and how many of them converted.
type SeriesCount struct {
	StartMs   int64
	Sessions  int64
	Converted int64
}

// ScanGroups reads rows of n key columns, then sessions and converted.
func ScanGroups(rows Rows, n int) ([]GroupCount, error) {
	var out []GroupCount
	for rows.Next() {
		g := GroupCount{Keys: make([]string, n)}
		dest := make([]any, 0, n+2)
		for i := range g.Keys {
			dest = append(dest, &g.Keys[i])
		}
		if err := rows.Scan(append(dest, &g.Sessions, &g.Converted)...); err != nil {
			return nil, fmt.Errorf("scan group: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// ScanSeries reads (start_ms, sessions, converted) rows.
func ScanSeries(rows Rows) ([]SeriesCount, error) {
	var out []SeriesCount
	for rows.Next() {
		var s SeriesCount
		if err := rows.Scan(&s.StartMs, &s.Sessions, &s.Converted); err != nil {
			return nil, fmt.Errorf("scan series: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
