package clickhouse

import (
	"context"
	"fmt"
	"math"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rungdev/rung/sink"
)

const (
	insertSessions = "INSERT INTO %s.sessions (date, site, anonymous_id, start_ms, landing_ms, landing_path, " +
		"utm_source, utm_medium, utm_campaign, converted, version)"
	insertLanding = "INSERT INTO %s.landing_hourly (date, hour, site, landing_path, utm_source, utm_medium, " +
		"utm_campaign, cell, sessions, converted, version)"
	insertExposures   = "INSERT INTO %s.exposures (site, experiment, anonymous_id, first_ms, variant, rank)"
	insertConversions = "INSERT INTO %s.conversions (site, anonymous_id, last_ms)"
)

// writeRollups inserts the batch's rollup rows, the four tables concurrently: each
// insert costs a round trip and a part on the server whatever its size, so the flush
// waits for the slowest one instead of their sum. The goroutines are the call's own and
// have returned when it does.
func (c *ClickHouse) writeRollups(ctx context.Context, b *sink.Batch) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.writeSessions(ctx, b.Sessions) })
	g.Go(func() error { return c.writeLanding(ctx, b.Landing) })
	g.Go(func() error { return c.writeExposures(ctx, b.Exposures) })
	g.Go(func() error { return c.writeConversions(ctx, b.Conversions) })
	return g.Wait()
}

func (c *ClickHouse) writeSessions(ctx context.Context, rows []sink.Session) error {
	if n := len(rows); n > 0 {
		date, site, anon := make([]time.Time, n), make([]string, n), make([]string, n)
		start, lms := make([]int64, n), make([]int64, n)
		path, src, med, camp := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		conv, ver := make([]uint8, n), make([]uint64, n)
		for i := range rows {
			s := &rows[i]
			date[i] = time.UnixMilli(s.StartMs).UTC()
			site[i], anon[i], start[i], lms[i] = s.Site, s.AnonymousID, s.StartMs, s.LandingMs
			path[i], src[i], med[i], camp[i] = s.LandingPath, s.UTMSource, s.UTMMedium, s.UTMCampaign
			if s.Converted {
				conv[i] = 1
			}
			ver[i] = s.Version
		}
		return c.send(ctx, "sessions", insertSessions, n, date, site, anon, start, lms, path, src, med, camp, conv, ver)
	}
	return nil
}

func (c *ClickHouse) writeLanding(ctx context.Context, rows []sink.LandingCell) error {
	if n := len(rows); n > 0 {
		date, hour, site := make([]time.Time, n), make([]time.Time, n), make([]string, n)
		path, src, med, camp := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		cell, sess, conv, ver := make([]uint64, n), make([]int64, n), make([]int64, n), make([]uint64, n)
		for i := range rows {
			l := &rows[i]
			h := time.UnixMilli(l.HourMs).UTC()
			date[i], hour[i], site[i] = h, h, l.Site
			path[i], src[i], med[i], camp[i] = l.LandingPath, l.UTMSource, l.UTMMedium, l.UTMCampaign
			cell[i], sess[i], conv[i], ver[i] = l.Cell, l.Sessions, l.Converted, l.Version
		}
		return c.send(ctx, "landing_hourly", insertLanding, n, date, hour, site, path, src, med, camp, cell, sess, conv, ver)
	}
	return nil
}

func (c *ClickHouse) writeExposures(ctx context.Context, rows []sink.Exposure) error {
	if n := len(rows); n > 0 {
		site, exp, anon, variant := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		first, rank := make([]int64, n), make([]uint64, n)
		for i := range rows {
			e := &rows[i]
			site[i], exp[i], anon[i], first[i], variant[i] = e.Site, e.Experiment, e.AnonymousID, e.FirstMs, e.Variant
			rank[i] = uint64(math.MaxInt64 - e.FirstMs)
		}
		return c.send(ctx, "exposures", insertExposures, n, site, exp, anon, first, variant, rank)
	}
	return nil
}

func (c *ClickHouse) writeConversions(ctx context.Context, rows []sink.Conversion) error {
	if n := len(rows); n > 0 {
		site, anon, last := make([]string, n), make([]string, n), make([]uint64, n)
		for i := range rows {
			v := &rows[i]
			site[i], anon[i], last[i] = v.Site, v.AnonymousID, uint64(max(v.LastMs, 0))
		}
		return c.send(ctx, "conversions", insertConversions, n, site, anon, last)
	}
	return nil
}

// send inserts n rows given as columns into table, retrying while the server is
// unreachable.
func (c *ClickHouse) send(ctx context.Context, table, query string, n int, cols ...any) error {
	q := fmt.Sprintf(query, c.db)
	err := retry(ctx, func() error {
		batch, err := c.conn.PrepareBatch(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		defer batch.Close()
		for i, col := range cols {
			if err := batch.Column(i).Append(col); err != nil {
				return fmt.Errorf("append column %d: %w", i, err)
			}
		}
		if err := batch.Send(); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		return nil
	}, c.maxServerAttempts, c.errors, c.retries)
	if err != nil {
		return fmt.Errorf("insert %d rows into clickhouse table %s: %w", n, table, err)
	}
	c.rollups[table].Add(n)
	return nil
}

// Optimize merges every rollup table's parts (OPTIMIZE ... FINAL), so tests can show the
// queries answer the same before and after ClickHouse's background merges.
func (c *ClickHouse) Optimize(ctx context.Context) error {
	for _, t := range rollupTables {
		if err := c.conn.Exec(ctx, "OPTIMIZE TABLE "+c.db+"."+t+" FINAL"); err != nil {
			return fmt.Errorf("optimize %s: %w", t, err)
		}
	}
	return nil
}
