package clickhouse

import (
	"context"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/rungdev/rung/sink"
)

// The recomputation is the auditor: it derives every rollup from the raw signals alone,
// with SQL that shares nothing with the pre-aggregator but the rules, so reconcile can
// compare the two. ClickHouse 18.16 has no window functions; sessions are cut with
// arrays: each visitor's signals sorted by time, a session starts at the first signal
// and after every gap of at least the timeout, and arrayCumSum numbers the sessions.

// deduped selects the non-bot signals of every visitor with a non-bot signal in
// [@from, @to), all of their history, each (site, anonymous_id, event_id) once: its
// earliest copy in their order, (event time, sequence). siteCond narrows the visitors
// (" AND site = @site" or "").
func (c *ClickHouse) deduped(siteCond string) string {
	return `SELECT site, anonymous_id, event_id, min(event_ms) AS ms,
		argMin(type, (event_ms, seq)) AS kind, argMin(path, (event_ms, seq)) AS pth,
		argMin(utm_source, (event_ms, seq)) AS src, argMin(utm_medium, (event_ms, seq)) AS med,
		argMin(utm_campaign, (event_ms, seq)) AS camp, argMin(name, (event_ms, seq)) AS nm,
		argMin(experiment, (event_ms, seq)) AS ex, argMin(variant, (event_ms, seq)) AS va
	FROM ` + c.db + `.signals
	WHERE bot = 0 AND (site, anonymous_id) IN (
		SELECT site, anonymous_id FROM ` + c.db + `.signals
		WHERE bot = 0 AND event_ms >= @from AND event_ms < @to` + siteCond + `)
	GROUP BY site, anonymous_id, event_id`
}

// sessionsSQL recomputes the sessions of the deduped signals: start, landing pageview
// (the smallest (time, path, utm_source, utm_medium, utm_campaign) among its pageviews,
// zeros when it has none) and whether it converted.
func (c *ClickHouse) sessionsSQL(siteCond string) string {
	return `SELECT site, anonymous_id, start_ms, tupleElement(landing, 1) AS landing_ms,
		tupleElement(landing, 2) AS landing_path, tupleElement(landing, 3) AS utm_source,
		tupleElement(landing, 4) AS utm_medium, tupleElement(landing, 5) AS utm_campaign, converted
	FROM (
		SELECT site, anonymous_id, min(tupleElement(e, 1)) AS start_ms,
			minIf((tupleElement(e, 1), tupleElement(e, 3), tupleElement(e, 4), tupleElement(e, 5), tupleElement(e, 6)),
				tupleElement(e, 2) = 1) AS landing,
			max(tupleElement(e, 7)) AS converted
		FROM (
			SELECT site, anonymous_id,
				arraySort(groupArray((ms, kind = 'pageview', pth, src, med, camp,
					kind = 'event' AND has(@goals, nm)))) AS evs,
				arrayMap(x -> tupleElement(x, 1), evs) AS ts,
				arrayCumSum(arrayMap(i -> i = 1 OR ts[i] - ts[i - 1] >= @timeout, arrayEnumerate(ts))) AS sess
			FROM (` + c.deduped(siteCond) + `)
			GROUP BY site, anonymous_id
		) ARRAY JOIN evs AS e, sess AS s
		GROUP BY site, anonymous_id, s
	)`
}

// Recompute derives the rollups of [fromMs, toMs) from the raw signals under rules.
func (c *ClickHouse) Recompute(ctx context.Context, fromMs, toMs int64, rules sink.Rules) (*sink.Rollups, error) {
	r := &sink.Rollups{}
	hf, ht := hourRange(fromMs, toMs)
	base := func(from, to int64) []any {
		return []any{ch.Named("from", from), ch.Named("to", to), ch.Named("timeout", rules.SessionTimeoutMs), goalsArg(rules.Goals)}
	}
	var err error
	r.Sessions, err = c.sessions(ctx, `SELECT site, anonymous_id, start_ms, landing_ms, landing_path, utm_source,
		utm_medium, utm_campaign, converted FROM (`+c.sessionsSQL("")+`)
		WHERE start_ms >= @from AND start_ms < @to`, base(fromMs, toMs)...)
	if err != nil {
		return nil, err
	}
	// The landing hours need the sessions of the whole hours.
	r.Landing, err = c.landingHours(ctx, `SELECT site, intDiv(start_ms, 3600000) * 3600000 AS h, landing_path,
		utm_source, utm_medium, utm_campaign, toInt64(count()), toInt64(sum(converted)) FROM (`+c.sessionsSQL("")+`)
		WHERE start_ms >= @hfrom AND start_ms < @hto
		GROUP BY site, h, landing_path, utm_source, utm_medium, utm_campaign`,
		append(base(hf*1000, ht*1000), ch.Named("hfrom", hf*1000), ch.Named("hto", ht*1000))...)
	if err != nil {
		return nil, err
	}
	d := c.deduped("")
	r.Exposures, err = c.exposures(ctx, `SELECT site, ex, anonymous_id, first_ms, variant, conv_ms > first_ms FROM (
			SELECT site, ex, anonymous_id, tupleElement(m, 1) AS first_ms, tupleElement(m, 2) AS variant FROM (
				SELECT site, ex, anonymous_id, min((ms, va)) AS m FROM (`+d+`)
				WHERE kind = 'exposure' AND ex != '' GROUP BY site, ex, anonymous_id)
			WHERE first_ms >= @from AND first_ms < @to
		) ANY LEFT JOIN (
			SELECT site, anonymous_id, max(ms) AS conv_ms FROM (`+d+`)
			WHERE kind = 'event' AND has(@goals, nm) GROUP BY site, anonymous_id
		) USING (site, anonymous_id)`, base(fromMs, toMs)...)
	if err != nil {
		return nil, err
	}
	r.Sort()
	return r, nil
}

// RecomputeLanding answers the landing-page query from the raw signals alone: what the
// rollup answers, the slow way. Reconcile and the benchmarks compare the two.
func (c *ClickHouse) RecomputeLanding(ctx context.Context, f sink.LandingFilter, rules sink.Rules) ([]sink.LandingCount, error) {
	hf, ht := hourRange(f.FromMs, f.ToMs)
	args := []any{ch.Named("from", hf*1000), ch.Named("to", ht*1000), ch.Named("timeout", rules.SessionTimeoutMs), goalsArg(rules.Goals)}
	siteCond, where := "", ""
	if f.Site != "" {
		siteCond = " AND site = @site"
		args = append(args, ch.Named("site", f.Site))
	}
	for _, p := range []struct{ col, v string }{{"utm_source", f.UTMSource}, {"utm_medium", f.UTMMedium}, {"utm_campaign", f.UTMCampaign}} {
		if p.v != "" {
			where += " AND " + p.col + " = @" + p.col
			args = append(args, ch.Named(p.col, p.v))
		}
	}
	return c.landingCounts(ctx, `SELECT landing_path, toInt64(count()), toInt64(sum(converted)) FROM (`+c.sessionsSQL(siteCond)+`)
		WHERE start_ms >= @from AND start_ms < @to`+siteCond+where+`
		GROUP BY landing_path ORDER BY landing_path`, args...)
}
