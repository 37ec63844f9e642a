package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/rungdev/rung/sink"
)

// The recomputation is the auditor: it derives every rollup from the raw signals alone,
// with SQL that shares nothing with the pre-aggregator but the rules (see the ClickHouse
// twin, which must agree with it row for row; the conformance suite checks both).

// sessionsCTE defines the CTEs d (deduplicated non-bot signals of the visitors active
// in [:from, :to), their whole history, earliest copy of each event_id) and sessions.
// siteCond narrows the visitors (" AND site = :site" or "").
func sessionsCTE(siteCond string) string {
	return `WITH vis AS (
		SELECT DISTINCT site, anonymous_id FROM signals
		WHERE bot = 0 AND event_ms >= :from AND event_ms < :to` + siteCond + `
	), raw AS (
		SELECT s.site, s.anonymous_id, s.event_id, s.event_ms AS ms, s.seq, s.type AS kind, s.path AS pth,
			s.utm_source AS src, s.utm_medium AS med, s.utm_campaign AS camp, s.name AS nm,
			s.experiment AS ex, s.variant AS va,
			ROW_NUMBER() OVER (PARTITION BY s.site, s.anonymous_id, s.event_id ORDER BY s.event_ms, s.seq, s.rowid) AS copy
		FROM signals s JOIN vis ON vis.site = s.site AND vis.anonymous_id = s.anonymous_id
		WHERE s.bot = 0
	), d AS (
		SELECT *, (kind = 'event' AND nm IN (SELECT value FROM json_each(:goals))) AS goal FROM raw WHERE copy = 1
	), g AS (
		SELECT *, CASE WHEN ms - LAG(ms) OVER w < :timeout THEN 0 ELSE 1 END AS first
		FROM d WINDOW w AS (PARTITION BY site, anonymous_id ORDER BY ms, seq, event_id)
	), n AS (
		SELECT *, SUM(first) OVER (PARTITION BY site, anonymous_id ORDER BY ms, seq, event_id ROWS UNBOUNDED PRECEDING) AS sn
		FROM g
	), sess AS (
		SELECT site, anonymous_id, sn, min(ms) AS start_ms, max(goal) AS converted FROM n GROUP BY site, anonymous_id, sn
	), land AS (
		SELECT site, anonymous_id, sn, ms, pth, src, med, camp,
			ROW_NUMBER() OVER (PARTITION BY site, anonymous_id, sn ORDER BY ms, seq, pth, src, med, camp) AS r
		FROM n WHERE kind = 'pageview'
	), sessions AS (
		SELECT sess.site, sess.anonymous_id, sess.start_ms, coalesce(land.ms, 0) AS landing_ms,
			coalesce(land.pth, '') AS landing_path, coalesce(land.src, '') AS utm_source,
			coalesce(land.med, '') AS utm_medium, coalesce(land.camp, '') AS utm_campaign, sess.converted
		FROM sess LEFT JOIN land ON land.site = sess.site AND land.anonymous_id = sess.anonymous_id
			AND land.sn = sess.sn AND land.r = 1
	)`
}

func ruleArgs(from, to int64, rules sink.Rules) []any {
	goals, _ := json.Marshal(rules.Goals)
	if rules.Goals == nil {
		goals = []byte("[]")
	}
	return []any{sql.Named("from", from), sql.Named("to", to), sql.Named("timeout", rules.SessionTimeoutMs),
		sql.Named("goals", string(goals))}
}

// Recompute derives the rollups of [fromMs, toMs) from the raw signals under rules.
func (s *SQLite) Recompute(ctx context.Context, fromMs, toMs int64, rules sink.Rules) (*sink.Rollups, error) {
	r := &sink.Rollups{}
	var err error
	r.Sessions, err = s.sessions(ctx, sessionsCTE("")+` SELECT site, anonymous_id, start_ms, landing_ms, landing_path,
		utm_source, utm_medium, utm_campaign, converted FROM sessions WHERE start_ms >= :from AND start_ms < :to`,
		ruleArgs(fromMs, toMs, rules)...)
	if err != nil {
		return nil, err
	}
	hf, ht := hourRange(fromMs, toMs)
	r.Landing, err = s.landingHours(ctx, sessionsCTE("")+` SELECT site, start_ms - start_ms % 3600000 AS h, landing_path,
		utm_source, utm_medium, utm_campaign, count(*), sum(converted) FROM sessions
		WHERE start_ms >= :from AND start_ms < :to
		GROUP BY site, h, landing_path, utm_source, utm_medium, utm_campaign`, ruleArgs(hf, ht, rules)...)
	if err != nil {
		return nil, err
	}
	r.Exposures, err = s.exposures(ctx, sessionsCTE("")+`, ex AS (
			SELECT site, ex, anonymous_id, ms, va,
				ROW_NUMBER() OVER (PARTITION BY site, ex, anonymous_id ORDER BY ms, seq, va) AS r
			FROM d WHERE kind = 'exposure' AND ex != ''
		), cv AS (
			SELECT site, anonymous_id, max(ms) AS last FROM d WHERE goal GROUP BY site, anonymous_id
		)
		SELECT ex.site, ex.ex, ex.anonymous_id, ex.ms, ex.va, coalesce(cv.last > ex.ms, 0)
		FROM ex LEFT JOIN cv ON cv.site = ex.site AND cv.anonymous_id = ex.anonymous_id
		WHERE ex.r = 1 AND ex.ms >= :from AND ex.ms < :to`, ruleArgs(fromMs, toMs, rules)...)
	if err != nil {
		return nil, err
	}
	r.Sort()
	return r, nil
}

// RecomputeLanding answers the landing-page query from the raw signals alone.
func (s *SQLite) RecomputeLanding(ctx context.Context, f sink.LandingFilter, rules sink.Rules) ([]sink.LandingCount, error) {
	hf, ht := hourRange(f.FromMs, f.ToMs)
	args := ruleArgs(hf, ht, rules)
	siteCond, where := "", ""
	if f.Site != "" {
		siteCond = " AND site = :site"
		args = append(args, sql.Named("site", f.Site))
	}
	for _, p := range []struct{ col, v string }{{"utm_source", f.UTMSource}, {"utm_medium", f.UTMMedium}, {"utm_campaign", f.UTMCampaign}} {
		if p.v != "" {
			where += " AND " + p.col + " = :" + p.col
			args = append(args, sql.Named(p.col, p.v))
		}
	}
	return s.landingCounts(ctx, sessionsCTE(siteCond)+` SELECT landing_path, count(*), sum(converted) FROM sessions
		WHERE start_ms >= :from AND start_ms < :to`+siteCond+where+` GROUP BY landing_path ORDER BY landing_path`, args...)
}
