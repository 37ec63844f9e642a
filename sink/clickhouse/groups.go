package clickhouse

import (
	"context"
	"fmt"
	"strings"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/rungdev/rung/sink"
)

// LandingGroups sums the landing-page rollup by the columns in by (sink.LandingColumns),
// ordered by them.
func (c *ClickHouse) LandingGroups(ctx context.Context, f sink.LandingFilter, by []string) ([]sink.GroupCount, error) {
	if err := sink.CheckColumns(by); err != nil {
		return nil, err
	}
	where, args := landingWhere(f)
	cols := strings.Join(by, ", ")
	rows, err := c.conn.Query(ctx, `SELECT `+cols+`, sum(s) AS n, sum(k) AS m FROM (
		SELECT `+cols+`, argMax(sessions, version) AS s, argMax(converted, version) AS k
		FROM `+c.db+`.landing_hourly WHERE `+where+`
		GROUP BY site, hour, landing_path, utm_source, utm_medium, utm_campaign, cell
	) GROUP BY `+cols+` HAVING n != 0 OR m != 0 ORDER BY `+cols, args...)
	if err != nil {
		return nil, fmt.Errorf("query landing rollup by %s: %w", cols, err)
	}
	defer rows.Close()
	return sink.ScanGroups(rows, len(by))
}

// LandingSeries sums the landing-page rollup per bucket of stepMs (whole hours), the
// buckets aligned to the Unix epoch (so a day's is UTC midnight); empty buckets are
// left out.
func (c *ClickHouse) LandingSeries(ctx context.Context, f sink.LandingFilter, stepMs int64) ([]sink.SeriesCount, error) {
	if stepMs <= 0 || stepMs%3600_000 != 0 {
		return nil, fmt.Errorf("series step %d ms: want whole hours", stepMs)
	}
	where, args := landingWhere(f)
	rows, err := c.conn.Query(ctx, `SELECT toInt64(intDiv(toUInt32(hour), @step) * @step) * 1000 AS b, sum(s) AS n, sum(k) AS m FROM (
		SELECT hour, argMax(sessions, version) AS s, argMax(converted, version) AS k
		FROM `+c.db+`.landing_hourly WHERE `+where+`
		GROUP BY site, hour, landing_path, utm_source, utm_medium, utm_campaign, cell
	) GROUP BY b HAVING n != 0 OR m != 0 ORDER BY b`, append(args, ch.Named("step", uint32(stepMs/1000)))...)
	if err != nil {
		return nil, fmt.Errorf("query landing series: %w", err)
	}
	defer rows.Close()
	return sink.ScanSeries(rows)
}

// SessionReferrers counts the sessions that started in [f.FromMs, f.ToMs) (widened to
// whole hours, as the rollup) by the referrer of their landing pageview ("" for none),
// and those with one of goals, from the raw signals: the rollups do not keep the
// referrer. The sessions are the pre-aggregator's (session_ms on the signals it
// counted; bots have none) and the landing pageview is chosen as the rollup chooses it,
// so the counts add up to the rollup's under the same goals. The utm filters apply to
// the landing pageview.
func (c *ClickHouse) SessionReferrers(ctx context.Context, f sink.LandingFilter, goals []string) ([]sink.GroupCount, error) {
	from, to := hourRange(f.FromMs, f.ToMs)
	args := []any{ch.Named("from", max(from*1000, 1)), ch.Named("to", to*1000), ch.Named("from_day", day(from*1000, -1)), goalsArg(goals)}
	site, where := "", ""
	if f.Site != "" {
		site, args = " AND site = @site", append(args, ch.Named("site", f.Site))
	}
	for i, p := range []struct{ col, v string }{{"utm_source", f.UTMSource}, {"utm_medium", f.UTMMedium}, {"utm_campaign", f.UTMCampaign}} {
		if p.v != "" {
			where += fmt.Sprintf(" AND tupleElement(l, %d) = @%s", i+3, p.col)
			args = append(args, ch.Named(p.col, p.v))
		}
	}
	if where != "" {
		where = " WHERE " + strings.TrimPrefix(where, " AND ")
	}
	// Copies of one signal change neither the earliest pageview nor whether a goal
	// was reached, so they need no deduplication here.
	rows, err := c.conn.Query(ctx, `SELECT tupleElement(l, 6) AS referrer, toInt64(count()), toInt64(sum(converted)) FROM (
		SELECT minIf((received_ms, path, utm_source, utm_medium, utm_campaign, referrer), type = 'pageview') AS l,
			max(type = 'event' AND has(@goals, name)) AS converted
		FROM `+c.db+`.signals
		WHERE session_ms >= @from AND session_ms < @to AND date >= toDate(@from_day)`+site+`
		GROUP BY site, anonymous_id, session_ms
	)`+where+` GROUP BY referrer ORDER BY referrer`, args...)
	if err != nil {
		return nil, fmt.Errorf("query sessions by referrer: %w", err)
	}
	defer rows.Close()
	return sink.ScanGroups(rows, 1)
}

// BotSignals counts the signals flagged as bots received in [fromMs, toMs), on site or
// (empty) any: what the rollups left out. A signal stored twice counts once.
func (c *ClickHouse) BotSignals(ctx context.Context, site string, fromMs, toMs int64) (int64, error) {
	args := []any{ch.Named("from", fromMs), ch.Named("to", toMs), ch.Named("from_day", day(fromMs, -1)), ch.Named("to_day", day(toMs, 1))}
	where := "bot = 1 AND received_ms >= @from AND received_ms < @to AND date >= toDate(@from_day) AND date <= toDate(@to_day)"
	if site != "" {
		where, args = where+" AND site = @site", append(args, ch.Named("site", site))
	}
	var n uint64
	if err := c.conn.QueryRow(ctx, `SELECT uniqExact(event_id) FROM `+c.db+`.signals WHERE `+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count bot signals: %w", err)
	}
	return int64(n), nil
}
