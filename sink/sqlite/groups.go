package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/rungdev/rung/sink"
)

// LandingGroups sums the landing-page rollup by the columns in by (sink.LandingColumns),
// ordered by them.
func (s *SQLite) LandingGroups(ctx context.Context, f sink.LandingFilter, by []string) ([]sink.GroupCount, error) {
	if err := sink.CheckColumns(by); err != nil {
		return nil, err
	}
	from, to := hourRange(f.FromMs, f.ToMs)
	where, args := landingFilter("hour_ms >= ? AND hour_ms < ?", []any{from, to}, "", f)
	cols := strings.Join(by, ", ")
	rows, err := s.db.QueryContext(ctx, `SELECT `+cols+`, sum(sessions) AS n, sum(converted) AS m FROM landing_hourly
		WHERE `+where+` GROUP BY `+cols+` HAVING n != 0 OR m != 0 ORDER BY `+cols, args...)
	if err != nil {
		return nil, fmt.Errorf("query landing rollup by %s: %w", cols, err)
	}
	defer rows.Close()
	return sink.ScanGroups(rows, len(by))
}

// LandingSeries sums the landing-page rollup per bucket of stepMs (whole hours), the
// buckets aligned to the Unix epoch (so a day's is UTC midnight); empty buckets are
// left out.
func (s *SQLite) LandingSeries(ctx context.Context, f sink.LandingFilter, stepMs int64) ([]sink.SeriesCount, error) {
	if stepMs <= 0 || stepMs%3600_000 != 0 {
		return nil, fmt.Errorf("series step %d ms: want whole hours", stepMs)
	}
	from, to := hourRange(f.FromMs, f.ToMs)
	where, args := landingFilter("hour_ms >= ? AND hour_ms < ?", []any{from, to}, "", f)
	rows, err := s.db.QueryContext(ctx, `SELECT hour_ms - hour_ms % ? AS b, sum(sessions) AS n, sum(converted) AS m
		FROM landing_hourly WHERE `+where+` GROUP BY b HAVING n != 0 OR m != 0 ORDER BY b`, append([]any{stepMs}, args...)...)
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
func (s *SQLite) SessionReferrers(ctx context.Context, f sink.LandingFilter, goals []string) ([]sink.GroupCount, error) {
	from, to := hourRange(f.FromMs, f.ToMs)
	args := ruleArgs(max(from, 1), to, sink.Rules{Goals: goals})
	site, where := "", ""
	if f.Site != "" {
		site, args = " AND site = :site", append(args, sql.Named("site", f.Site))
	}
	for _, p := range []struct{ col, v string }{{"src", f.UTMSource}, {"med", f.UTMMedium}, {"camp", f.UTMCampaign}} {
		if p.v != "" {
			where += " AND coalesce(l." + p.col + ", '') = :" + p.col
			args = append(args, sql.Named(p.col, p.v))
		}
	}
	rows, err := s.db.QueryContext(ctx, `WITH d AS (
			SELECT site, anonymous_id, session_ms, type AS kind, received_ms AS ms, path AS pth, utm_source AS src,
				utm_medium AS med, utm_campaign AS camp, referrer AS ref, name AS nm
			FROM signals WHERE session_ms >= :from AND session_ms < :to`+site+`
		), x AS (
			SELECT site, anonymous_id, session_ms,
				max(kind = 'event' AND nm IN (SELECT value FROM json_each(:goals))) AS converted
			FROM d GROUP BY site, anonymous_id, session_ms
		), l AS (
			SELECT site, anonymous_id, session_ms, src, med, camp, ref,
				ROW_NUMBER() OVER (PARTITION BY site, anonymous_id, session_ms ORDER BY ms, pth, src, med, camp) AS r
			FROM d WHERE kind = 'pageview'
		)
		SELECT coalesce(l.ref, '') AS referrer, count(*), sum(x.converted)
		FROM x LEFT JOIN l ON l.site = x.site AND l.anonymous_id = x.anonymous_id AND l.session_ms = x.session_ms AND l.r = 1
		WHERE 1`+where+` GROUP BY referrer ORDER BY referrer`, args...)
	if err != nil {
		return nil, fmt.Errorf("query sessions by referrer: %w", err)
	}
	defer rows.Close()
	return sink.ScanGroups(rows, 1)
}

// BotSignals counts the signals flagged as bots received in [fromMs, toMs), on site or
// (empty) any: what the rollups left out.
func (s *SQLite) BotSignals(ctx context.Context, site string, fromMs, toMs int64) (int64, error) {
	where, args := "bot = 1 AND received_ms >= ? AND received_ms < ?", []any{fromMs, toMs}
	if site != "" {
		where, args = where+" AND site = ?", append(args, site)
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT count(DISTINCT event_id) FROM signals WHERE `+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count bot signals: %w", err)
	}
	return n, nil
}
