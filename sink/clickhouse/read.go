package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Every query here aggregates over the rows a ReplacingMergeTree may still hold in
// several versions (argMax by version, min or max), so answers do not depend on whether
// background merges have run.

// maxDateTime is the largest second a DateTime holds on every supported server.
const maxDateTime = math.MaxUint32 - 1

// seconds clamps a Unix ms time to what toDateTime accepts.
func seconds(ms int64) int64 { return min(max(ms/1000, 0), maxDateTime) }

// day returns the UTC date of ms, widened by delta days, for partition pruning on Date
// columns (written from UTC times, compared as dates, so the server's time zone does
// not matter).
func day(ms int64, delta int) string {
	t := time.Unix(seconds(ms), 0).UTC().AddDate(0, 0, delta)
	if t.Year() < 1971 {
		return "1970-01-02"
	}
	if t.Year() > 2105 {
		return "2105-12-31"
	}
	return t.Format("2006-01-02")
}

// hourRange widens [from, to) to whole hours, in seconds.
func hourRange(fromMs, toMs int64) (int64, int64) {
	from := sink.HourMs(fromMs)
	to := sink.HourMs(toMs)
	if to < toMs {
		to += 3600_000
	}
	return seconds(from), seconds(to)
}

// landingWhere selects the landing rollup's rows of f: its hours widened to whole
// hours, and its site and utm values.
func landingWhere(f sink.LandingFilter) (string, []any) {
	from, to := hourRange(f.FromMs, f.ToMs)
	args := []any{ch.Named("from", from), ch.Named("to", to),
		ch.Named("from_day", day(from*1000, -1)), ch.Named("to_day", day(to*1000, 1))}
	where := "hour >= toDateTime(@from) AND hour < toDateTime(@to) AND date >= toDate(@from_day) AND date <= toDate(@to_day)"
	for _, p := range []struct{ col, v string }{{"site", f.Site}, {"utm_source", f.UTMSource},
		{"utm_medium", f.UTMMedium}, {"utm_campaign", f.UTMCampaign}} {
		if p.v != "" {
			where += " AND " + p.col + " = @" + p.col
			args = append(args, ch.Named(p.col, p.v))
		}
	}
	return where, args
}

// LandingCounts sums the landing-page rollup per landing page.
func (c *ClickHouse) LandingCounts(ctx context.Context, f sink.LandingFilter) ([]sink.LandingCount, error) {
	where, args := landingWhere(f)
	q := `SELECT landing_path, sum(s) AS n, sum(k) AS m FROM (
		SELECT landing_path, argMax(sessions, version) AS s, argMax(converted, version) AS k
		FROM ` + c.db + `.landing_hourly WHERE ` + where + `
		GROUP BY site, hour, landing_path, utm_source, utm_medium, utm_campaign, cell
	) GROUP BY landing_path HAVING n != 0 OR m != 0 ORDER BY landing_path`
	return c.landingCounts(ctx, q, args...)
}

func (c *ClickHouse) landingCounts(ctx context.Context, q string, args ...any) ([]sink.LandingCount, error) {
	rows, err := c.conn.Query(ctx, q, args...)
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
func (c *ClickHouse) VariantCounts(ctx context.Context, f sink.ExperimentFilter) ([]sink.VariantCount, error) {
	args := []any{ch.Named("exp", f.Experiment), ch.Named("from", f.FromMs), ch.Named("to", f.ToMs)}
	site := ""
	if f.Site != "" {
		site = " AND site = @site"
		args = append(args, ch.Named("site", f.Site))
	}
	q := `SELECT variant, count() AS visitors, sum(conv_ms > first_ms) AS converted FROM (
		SELECT site, anonymous_id, tupleElement(m, 1) AS first_ms, tupleElement(m, 2) AS variant FROM (
			SELECT site, anonymous_id, min((ms, variant)) AS m FROM ` + c.db + `.visitors
			WHERE experiment = @exp` + site + ` GROUP BY site, anonymous_id)
		WHERE first_ms >= @from AND first_ms < @to
	) ANY LEFT JOIN (
		SELECT site, anonymous_id, max(ms) AS conv_ms FROM ` + c.db + `.visitors
		WHERE experiment = '' AND (site, anonymous_id) IN (
			SELECT site, anonymous_id FROM ` + c.db + `.visitors WHERE experiment = @exp` + site + `)
		GROUP BY site, anonymous_id
	) USING (site, anonymous_id)
	GROUP BY variant ORDER BY variant`
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query experiment %q: %w", f.Experiment, err)
	}
	defer rows.Close()
	var out []sink.VariantCount
	for rows.Next() {
		var (
			v    sink.VariantCount
			n, k uint64
		)
		if err := rows.Scan(&v.Variant, &n, &k); err != nil {
			return nil, fmt.Errorf("scan variant: %w", err)
		}
		v.Visitors, v.Converted = int64(n), int64(k)
		out = append(out, v)
	}
	return out, rows.Err()
}

// Experiments lists the experiments with exposures, with their exposed visitors.
func (c *ClickHouse) Experiments(ctx context.Context, site string) ([]sink.ExperimentInfo, error) {
	args := []any{}
	where := " WHERE experiment != ''"
	if site != "" {
		where, args = where+" AND site = @site", []any{ch.Named("site", site)}
	}
	q := `SELECT experiment, count(), min(f), max(f) FROM (
		SELECT experiment, site, anonymous_id, min(ms) AS f FROM ` + c.db + `.visitors` + where + `
		GROUP BY experiment, site, anonymous_id
	) GROUP BY experiment ORDER BY experiment`
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list experiments: %w", err)
	}
	defer rows.Close()
	var out []sink.ExperimentInfo
	for rows.Next() {
		var (
			e sink.ExperimentInfo
			n uint64
		)
		if err := rows.Scan(&e.Experiment, &n, &e.FirstMs, &e.LastMs); err != nil {
			return nil, fmt.Errorf("scan experiment: %w", err)
		}
		e.Visitors = int64(n)
		out = append(out, e)
	}
	return out, rows.Err()
}

// PreRolled reads the rollups of [fromMs, toMs) as the pre-aggregator wrote them:
// the sessions it started in the range (its session_ms on the raw signals; their
// landing page and conversion read from the signals it counted in them, under rules'
// goals), landing hours in the range (widened to whole hours), and visitors first
// exposed in the range.
func (c *ClickHouse) PreRolled(ctx context.Context, fromMs, toMs int64, rules sink.Rules) (*sink.Rollups, error) {
	r := &sink.Rollups{}
	var err error
	r.Sessions, err = c.sessions(ctx, `SELECT site, anonymous_id, session_ms, tupleElement(l, 1), tupleElement(l, 2),
		tupleElement(l, 3), tupleElement(l, 4), tupleElement(l, 5), converted FROM (
			SELECT site, anonymous_id, session_ms, minIf((ms, pth, src, med, camp), kind = 'pageview') AS l,
				max(kind = 'event' AND has(@goals, nm)) AS converted
			FROM (
				SELECT site, anonymous_id, event_id, session_ms, min(event_ms) AS ms,
					argMin(type, (event_ms, seq)) AS kind, argMin(path, (event_ms, seq)) AS pth,
					argMin(utm_source, (event_ms, seq)) AS src, argMin(utm_medium, (event_ms, seq)) AS med,
					argMin(utm_campaign, (event_ms, seq)) AS camp, argMin(name, (event_ms, seq)) AS nm
				FROM `+c.db+`.signals
				WHERE session_ms >= @from AND session_ms < @to AND date >= toDate(@from_day)
				GROUP BY site, anonymous_id, event_id, session_ms)
			GROUP BY site, anonymous_id, session_ms)`,
		ch.Named("from", max(fromMs, 1)), ch.Named("to", toMs), ch.Named("from_day", day(fromMs, -1)), goalsArg(rules.Goals))
	if err != nil {
		return nil, err
	}
	hf, ht := hourRange(fromMs, toMs)
	r.Landing, err = c.landingHours(ctx, `SELECT site, toInt64(toUInt32(hour)) * 1000, landing_path, utm_source,
		utm_medium, utm_campaign, sum(s) AS n, sum(k) AS m FROM (
			SELECT site, hour, landing_path, utm_source, utm_medium, utm_campaign,
				argMax(sessions, version) AS s, argMax(converted, version) AS k
			FROM `+c.db+`.landing_hourly WHERE hour >= toDateTime(@from) AND hour < toDateTime(@to)
			GROUP BY site, hour, landing_path, utm_source, utm_medium, utm_campaign, cell
		) GROUP BY site, hour, landing_path, utm_source, utm_medium, utm_campaign HAVING n != 0 OR m != 0`,
		ch.Named("from", hf), ch.Named("to", ht))
	if err != nil {
		return nil, err
	}
	r.Exposures, err = c.exposures(ctx, `SELECT site, experiment, anonymous_id, first_ms, variant, conv_ms > first_ms FROM (
			SELECT site, experiment, anonymous_id, tupleElement(m, 1) AS first_ms, tupleElement(m, 2) AS variant FROM (
				SELECT site, experiment, anonymous_id, min((ms, variant)) AS m FROM `+c.db+`.visitors
				WHERE experiment != '' GROUP BY site, experiment, anonymous_id)
			WHERE first_ms >= @from AND first_ms < @to
		) ANY LEFT JOIN (
			SELECT site, anonymous_id, max(ms) AS conv_ms FROM `+c.db+`.visitors WHERE experiment = ''
			GROUP BY site, anonymous_id
		) USING (site, anonymous_id)`, ch.Named("from", fromMs), ch.Named("to", toMs))
	if err != nil {
		return nil, err
	}
	r.Sort()
	return r, nil
}

func (c *ClickHouse) sessions(ctx context.Context, q string, args ...any) ([]sink.Session, error) {
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query sessions: %w", err)
	}
	defer rows.Close()
	return sink.ScanSessions(rows)
}

func (c *ClickHouse) landingHours(ctx context.Context, q string, args ...any) ([]sink.LandingHour, error) {
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query landing hours: %w", err)
	}
	defer rows.Close()
	return sink.ScanLandingHours(rows)
}

func (c *ClickHouse) exposures(ctx context.Context, q string, args ...any) ([]sink.VisitorExposure, error) {
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query exposures: %w", err)
	}
	defer rows.Close()
	return sink.ScanExposures(rows)
}

// Resume reads back the sessions that may still be open: the latest session of each
// visitor in scope with a counted signal within timeoutMs of the newest counted one,
// with the signals counted in it, handed to each a chunk at a time. It returns how many
// sessions in scope it left out for scope.Limit (an estimate).
//
// Memory is bounded however many visitors are open: the visitors are split into chunks
// of about sink.ResumeChunk by cityHash64(anonymous_id), and each chunk is one query
// (its open sessions as an IN set, then their signals) handed on before the next is
// read. ClickHouse 18.16 has no xxHash64, so the owned partitions are picked here: a
// chunk's open sessions (site, anonymous_id, start) are read first, and those owned
// sent back as an external table that selects the signals to read.
func (c *ClickHouse) Resume(ctx context.Context, timeoutMs int64, scope sink.ResumeScope, each sink.ResumeFunc) (int, error) {
	return c.resume(ctx, timeoutMs, scope, sink.ResumeChunk, each)
}

// resumeSteps is how finely Resume picks the time from which it restores when it must
// leave sessions out: a visitor count at every 1/resumeSteps of the timeout.
const resumeSteps = 32

func (c *ClickHouse) resume(ctx context.Context, timeoutMs int64, scope sink.ResumeScope, chunk int, each sink.ResumeFunc) (int, error) {
	if err := scope.Validate(); err != nil {
		return 0, err
	}
	var newest int64
	if err := c.conn.QueryRow(ctx, "SELECT max(event_ms) FROM "+c.db+".signals WHERE session_ms > 0").Scan(&newest); err != nil {
		return 0, fmt.Errorf("find the newest signal: %w", err)
	}
	if newest == 0 {
		return 0, nil
	}
	since := newest - timeoutMs
	// One scan in bounded memory: the earliest session counted in the window (every
	// open session starts at or after it, which prunes the reads below), and how many
	// visitors were active since each step (HyperLogLog estimates), to size the chunks
	// and keep the most recently active under the limit.
	var q strings.Builder
	q.WriteString("SELECT min(session_ms)")
	cuts := make([]int64, resumeSteps)
	for i := range cuts {
		cuts[i] = since + timeoutMs*int64(i)/resumeSteps
		fmt.Fprintf(&q, ", uniqCombinedIf(site, anonymous_id, event_ms >= %d)", cuts[i])
	}
	// A signal is received at or after its event time: the date (of receipt) prunes.
	q.WriteString(" FROM " + c.db + ".signals WHERE session_ms > 0 AND event_ms >= @since AND date >= toDate(@since_day)")
	var first int64
	counts := make([]uint64, resumeSteps)
	dest := []any{&first}
	for i := range counts {
		dest = append(dest, &counts[i])
	}
	if err := c.conn.QueryRow(ctx, q.String(), ch.Named("since", since), ch.Named("since_day", day(since, -1))).Scan(dest...); err != nil {
		return 0, fmt.Errorf("count the open sessions: %w", err)
	}
	share := scope.Share()
	from, skipped := 0, 0
	if scope.Limit > 0 {
		from = resumeSteps - 1
		for i, n := range counts {
			if float64(n)*share <= float64(scope.Limit) {
				from = i
				break
			}
		}
		skipped = int(float64(counts[0]-counts[from]) * share)
	}
	// The flushes whose markers are stored, from the earliest session on: a signal
	// counted by another than these is left out below.
	done, err := c.committedTable(ctx, first)
	if err != nil {
		return 0, fmt.Errorf("read open sessions: %w", err)
	}
	// A tenth over the estimate keeps a chunk within its size despite the estimate's error.
	chunks := max(1, int((counts[from]*11/10+uint64(chunk)-1)/uint64(chunk)))
	owns := scope.Owner()
	for k := range chunks {
		part := fmt.Sprintf("cityHash64(anonymous_id) %% %d = %d", chunks, k)
		open := `SELECT site, anonymous_id, max(session_ms) FROM ` + c.db + `.signals
			WHERE session_ms > 0 AND event_ms >= @from AND date >= toDate(@from_day) AND ` + part + `
			GROUP BY site, anonymous_id`
		args := []any{ch.Named("from", cuts[from]), ch.Named("from_day", day(cuts[from], -1))}
		tables := []*ext.Table{done}
		if len(scope.Owned) > 0 {
			// The owned partitions' open sessions, sent back as an external table: the
			// signals of the others are then neither read out nor sent.
			keys, err := c.ownedSessions(ctx, open, owns, args...)
			if err != nil {
				return 0, fmt.Errorf("read open sessions, chunk %d of %d: %w", k+1, chunks, err)
			}
			if keys == nil {
				continue
			}
			tables = append(tables, keys)
			open = "SELECT site, anonymous_id, start FROM " + keys.Name()
		}
		qctx := ch.Context(ctx, ch.WithExternalTable(tables...))
		// Raw rows whose rollups are not stored are left out (counted.go): the writer
		// restoring counts them again (Uncounted), or they come again.
		rows, starts, err := c.resumeChunk(qctx, `WHERE session_ms >= @first AND date >= toDate(@first_day) AND `+part+
			` AND (site, anonymous_id, session_ms) IN (`+open+`)`+
			` AND (received_ms < @counted_since OR flush IN committed_flushes OR (anonymous_id, event_id) IN (SELECT anonymous_id, event_id FROM `+c.db+
			`.counted WHERE date >= toDate(@first_day) AND `+part+` AND (flush = 0 OR flush IN committed_flushes)))`,
			append(args, ch.Named("first", first), ch.Named("first_day", day(first, -1)), ch.Named("counted_since", c.countedSince))...)
		if err != nil {
			return 0, fmt.Errorf("read open sessions, chunk %d of %d: %w", k+1, chunks, err)
		}
		if len(rows) == 0 {
			continue
		}
		if err := each(sink.GroupResume(rows, starts)); err != nil {
			return 0, err
		}
	}
	return skipped, nil
}

// ownedSessions runs open, a query of open sessions (site, anonymous_id, start), and
// returns those of the visitors owns accepts as an external table, nil when there are
// none.
func (c *ClickHouse) ownedSessions(ctx context.Context, open string, owns func(string) bool, args ...any) (*ext.Table, error) {
	rows, err := c.conn.Query(ctx, open, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys *ext.Table
	for rows.Next() {
		var (
			site, anon string
			start      int64
		)
		if err := rows.Scan(&site, &anon, &start); err != nil {
			return nil, fmt.Errorf("scan open session: %w", err)
		}
		if !owns(anon) {
			continue
		}
		if keys == nil {
			if keys, err = ext.NewTable("resume_sessions", ext.Column("site", "String"),
				ext.Column("anonymous_id", "String"), ext.Column("start", "Int64")); err != nil {
				return nil, err
			}
		}
		if err := keys.Append(site, anon, start); err != nil {
			return nil, fmt.Errorf("keep open session: %w", err)
		}
	}
	return keys, rows.Err()
}

// resumeChunk reads the signals of one chunk of open sessions, only the columns the
// sessionizer replays.
func (c *ClickHouse) resumeChunk(ctx context.Context, where string, args ...any) ([]schemas.Signal, []int64, error) {
	rows, err := c.conn.Query(ctx, "SELECT event_id, type, site, anonymous_id, event_ms, seq, path, utm_source, utm_medium, "+
		"utm_campaign, name, experiment, variant, session_ms FROM "+c.db+".signals "+where, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var (
		out    []schemas.Signal
		starts []int64
	)
	for rows.Next() {
		var (
			g     schemas.Signal
			typ   string
			start int64
		)
		if err := rows.Scan(&g.EventID, &typ, &g.Site, &g.AnonymousID, &g.EventAt, &g.Seq, &g.Path, &g.UTMSource, &g.UTMMedium,
			&g.UTMCampaign, &g.Name, &g.Experiment, &g.Variant, &start); err != nil {
			return nil, nil, fmt.Errorf("scan signal: %w", err)
		}
		g.Type = schemas.ParseType(typ)
		out = append(out, g)
		starts = append(starts, start)
	}
	return out, starts, rows.Err()
}

// goalsArg binds the goal names as an array literal for has().
func goalsArg(goals []string) any {
	set := make(ch.ArraySet, len(goals))
	for i, g := range goals {
		set[i] = g
	}
	return ch.Named("goals", set)
}
