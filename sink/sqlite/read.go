package sqlite

import (
	"context"
	"fmt"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// hourRange widens [from, to) to whole hours.
func hourRange(fromMs, toMs int64) (int64, int64) {
	from, to := sink.HourMs(fromMs), sink.HourMs(toMs)
	if to < toMs {
		to += 3600_000
	}
	return from, to
}

// LandingCounts sums the landing-page rollup per landing page.
func (s *SQLite) LandingCounts(ctx context.Context, f sink.LandingFilter) ([]sink.LandingCount, error) {
	from, to := hourRange(f.FromMs, f.ToMs)
	where, args := "hour_ms >= ? AND hour_ms < ?", []any{from, to}
	where, args = landingFilter(where, args, "", f)
	return s.landingCounts(ctx, `SELECT landing_path, sum(sessions) AS n, sum(converted) AS m FROM landing_hourly
		WHERE `+where+` GROUP BY landing_path HAVING n != 0 OR m != 0 ORDER BY landing_path`, args...)
}

func landingFilter(where string, args []any, prefix string, f sink.LandingFilter) (string, []any) {
	for _, p := range []struct{ col, v string }{{"site", f.Site}, {"utm_source", f.UTMSource},
		{"utm_medium", f.UTMMedium}, {"utm_campaign", f.UTMCampaign}} {
		if p.v != "" {
			where += " AND " + prefix + p.col + " = ?"
			args = append(args, p.v)
		}
	}
	return where, args
}

func (s *SQLite) landingCounts(ctx context.Context, q string, args ...any) ([]sink.LandingCount, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query landing pages: %w", err)
	}
	defer rows.Close()
	var out []sink.LandingCount
	for rows.Next() {
		var l sink.LandingCount
		if err := rows.Scan(&l.LandingPath, &l.Sessions, &l.Converted); err != nil {
			return nil, fmt.Errorf("scan landing page: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// VariantCounts counts an experiment's visitors by the variant of their first exposure,
// and those with a conversion after it (strictly: see package preagg on order).
func (s *SQLite) VariantCounts(ctx context.Context, f sink.ExperimentFilter) ([]sink.VariantCount, error) {
	where, args := "e.experiment = ? AND e.first_ms >= ? AND e.first_ms < ?", []any{f.Experiment, f.FromMs, f.ToMs}
	if f.Site != "" {
		where, args = where+" AND e.site = ?", append(args, f.Site)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT e.variant, count(*), coalesce(sum(c.last_ms > e.first_ms), 0)
		FROM exposures e LEFT JOIN conversions c ON c.site = e.site AND c.anonymous_id = e.anonymous_id
		WHERE `+where+` GROUP BY e.variant ORDER BY e.variant`, args...)
	if err != nil {
		return nil, fmt.Errorf("query experiment %q: %w", f.Experiment, err)
	}
	defer rows.Close()
	var out []sink.VariantCount
	for rows.Next() {
		var v sink.VariantCount
		if err := rows.Scan(&v.Variant, &v.Visitors, &v.Converted); err != nil {
			return nil, fmt.Errorf("scan variant: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Experiments lists the experiments with exposures, with their exposed visitors.
func (s *SQLite) Experiments(ctx context.Context, site string) ([]sink.ExperimentInfo, error) {
	where, args := "", []any{}
	if site != "" {
		where, args = " WHERE site = ?", append(args, site)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT experiment, count(*), min(first_ms), max(first_ms) FROM exposures`+
		where+` GROUP BY experiment ORDER BY experiment`, args...)
	if err != nil {
		return nil, fmt.Errorf("list experiments: %w", err)
	}
	defer rows.Close()
	var out []sink.ExperimentInfo
	for rows.Next() {
		var e sink.ExperimentInfo
		if err := rows.Scan(&e.Experiment, &e.Visitors, &e.FirstMs, &e.LastMs); err != nil {
			return nil, fmt.Errorf("scan experiment: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// PreRolled reads the rollups of [fromMs, toMs) as the pre-aggregator wrote them:
// the sessions it started in the range (its session_ms on the raw signals; their
// landing page and conversion read from the signals it counted in them, under rules'
// goals), landing hours in the range (widened to whole hours), and visitors first
// exposed in the range.
func (s *SQLite) PreRolled(ctx context.Context, fromMs, toMs int64, rules sink.Rules) (*sink.Rollups, error) {
	r := &sink.Rollups{}
	var err error
	r.Sessions, err = s.sessions(ctx, `WITH d AS (
			SELECT site, anonymous_id, session_ms, type AS kind, event_ms AS ms, seq, path AS pth, utm_source AS src,
				utm_medium AS med, utm_campaign AS camp, name AS nm,
				ROW_NUMBER() OVER (PARTITION BY site, anonymous_id, session_ms, event_id ORDER BY event_ms, seq, rowid) AS copy
			FROM signals WHERE session_ms >= :from AND session_ms < :to
		), x AS (
			SELECT site, anonymous_id, session_ms,
				max(kind = 'event' AND nm IN (SELECT value FROM json_each(:goals))) AS converted
			FROM d WHERE copy = 1 GROUP BY site, anonymous_id, session_ms
		), l AS (
			SELECT site, anonymous_id, session_ms, ms, pth, src, med, camp,
				ROW_NUMBER() OVER (PARTITION BY site, anonymous_id, session_ms ORDER BY ms, seq, pth, src, med, camp) AS r
			FROM d WHERE copy = 1 AND kind = 'pageview'
		)
		SELECT x.site, x.anonymous_id, x.session_ms, coalesce(l.ms, 0), coalesce(l.pth, ''), coalesce(l.src, ''),
			coalesce(l.med, ''), coalesce(l.camp, ''), x.converted
		FROM x LEFT JOIN l ON l.site = x.site AND l.anonymous_id = x.anonymous_id AND l.session_ms = x.session_ms AND l.r = 1`,
		ruleArgs(max(fromMs, 1), toMs, rules)...)
	if err != nil {
		return nil, err
	}
	hf, ht := hourRange(fromMs, toMs)
	r.Landing, err = s.landingHours(ctx, `SELECT site, hour_ms, landing_path, utm_source, utm_medium, utm_campaign,
		sum(sessions) AS n, sum(converted) AS m FROM landing_hourly WHERE hour_ms >= ? AND hour_ms < ?
		GROUP BY site, hour_ms, landing_path, utm_source, utm_medium, utm_campaign HAVING n != 0 OR m != 0`, hf, ht)
	if err != nil {
		return nil, err
	}
	r.Exposures, err = s.exposures(ctx, `SELECT e.site, e.experiment, e.anonymous_id, e.first_ms, e.variant,
		coalesce(c.last_ms > e.first_ms, 0)
		FROM exposures e LEFT JOIN conversions c ON c.site = e.site AND c.anonymous_id = e.anonymous_id
		WHERE e.first_ms >= ? AND e.first_ms < ?`, fromMs, toMs)
	if err != nil {
		return nil, err
	}
	r.Sort()
	return r, nil
}

func (s *SQLite) sessions(ctx context.Context, q string, args ...any) ([]sink.Session, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query sessions: %w", err)
	}
	defer rows.Close()
	return sink.ScanSessions(rows)
}

func (s *SQLite) landingHours(ctx context.Context, q string, args ...any) ([]sink.LandingHour, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query landing hours: %w", err)
	}
	defer rows.Close()
	return sink.ScanLandingHours(rows)
}

func (s *SQLite) exposures(ctx context.Context, q string, args ...any) ([]sink.VisitorExposure, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query exposures: %w", err)
	}
	defer rows.Close()
	return sink.ScanExposures(rows)
}

// Resume reads back the sessions that may still be open: the latest session of each
// visitor in scope with a counted signal within timeoutMs of the newest counted one,
// with the signals counted in it, handed to each sink.ResumeChunk visitors at a time,
// the most recently active first. It returns how many sessions in scope it left out for
// scope.Limit. SQLite has no xxhash, so the partitions are filtered here, as the rows
// arrive; the rows stream, and SQLite sorts them on disk if they do not fit its cache.
func (s *SQLite) Resume(ctx context.Context, timeoutMs int64, scope sink.ResumeScope, each sink.ResumeFunc) (int, error) {
	return s.resume(ctx, timeoutMs, scope, sink.ResumeChunk, each)
}

func (s *SQLite) resume(ctx context.Context, timeoutMs int64, scope sink.ResumeScope, chunk int, each sink.ResumeFunc) (int, error) {
	if err := scope.Validate(); err != nil {
		return 0, err
	}
	var newest *int64
	if err := s.db.QueryRowContext(ctx, "SELECT max(event_ms) FROM signals WHERE session_ms > 0").Scan(&newest); err != nil {
		return 0, fmt.Errorf("find the newest signal: %w", err)
	}
	if newest == nil {
		return 0, nil
	}
	rows, err := s.db.QueryContext(ctx, `WITH open AS (
			SELECT site, anonymous_id, max(session_ms) AS start, max(event_ms) AS last FROM signals
			WHERE session_ms > 0 AND event_ms >= ? GROUP BY site, anonymous_id)
		SELECT s.event_id, s.type, s.site, s.anonymous_id, s.event_ms, s.seq, s.path, s.utm_source, s.utm_medium,
			s.utm_campaign, s.name, s.experiment, s.variant, s.session_ms
		FROM open o JOIN signals s ON s.site = o.site AND s.anonymous_id = o.anonymous_id AND s.session_ms = o.start
		ORDER BY o.last DESC, o.site, o.anonymous_id, s.event_ms, s.seq, s.rowid`, *newest-timeoutMs)
	if err != nil {
		return 0, fmt.Errorf("read open sessions: %w", err)
	}
	defer rows.Close()
	var (
		owns      = scope.Owner()
		out       []sink.Resume
		cur       *sink.Resume // the visitor being read, nil when out of scope or over the limit
		site      string
		anon      string
		delivered int
		skipped   int
	)
	for rows.Next() {
		var (
			one   schemas.Signal
			typ   string
			start int64
			seq   int64
		)
		if err := rows.Scan(&one.EventID, &typ, &one.Site, &one.AnonymousID, &one.EventAt, &seq, &one.Path, &one.UTMSource,
			&one.UTMMedium, &one.UTMCampaign, &one.Name, &one.Experiment, &one.Variant, &start); err != nil {
			return 0, fmt.Errorf("scan signal: %w", err)
		}
		one.Type, one.Seq = schemas.ParseType(typ), uint64(seq)
		if one.Site != site || one.AnonymousID != anon { // the next visitor
			site, anon, cur = one.Site, one.AnonymousID, nil
			if !owns(anon) {
				continue
			}
			if scope.Limit > 0 && delivered >= scope.Limit {
				skipped++
				continue
			}
			if len(out) == chunk {
				if err := each(out); err != nil {
					return 0, err
				}
				out = out[:0]
			}
			delivered++
			out = append(out, sink.Resume{Session: sink.Session{Site: one.Site, AnonymousID: one.AnonymousID, StartMs: start}})
			cur = &out[len(out)-1]
		}
		if cur != nil {
			cur.Signals = append(cur.Signals, one)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read open sessions: %w", err)
	}
	if len(out) > 0 {
		if err := each(out); err != nil {
			return 0, err
		}
	}
	return skipped, nil
}
