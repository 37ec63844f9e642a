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
	insertLanding = "INSERT INTO %s.landing_hourly (date, hour, site, landing_path, utm_source, utm_medium, " +
		"utm_campaign, cell, sessions, converted, version)"
	insertVisitors = "INSERT INTO %s.visitors (site, anonymous_id, experiment, ms, variant, rank)"
)

// writeRollups inserts the batch's rollup rows, the two tables concurrently: each
// insert costs a round trip and a part on the server whatever its size, so the flush
// waits for the slowest one instead of their sum. The goroutines are the call's own and
// have returned when it does.
func (c *ClickHouse) writeRollups(ctx context.Context, b *sink.Batch) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.writeLanding(ctx, b.Landing) })
	g.Go(func() error { return c.writeVisitors(ctx, b.Exposures, b.Conversions) })
	return g.Wait()
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

// writeVisitors inserts exposures and conversions into the visitors table, a
// conversion as the row of experiment "".
func (c *ClickHouse) writeVisitors(ctx context.Context, exposures []sink.Exposure, conversions []sink.Conversion) error {
	n := len(exposures) + len(conversions)
	if n == 0 {
		return nil
	}
	site, anon, exp, variant := make([]string, 0, n), make([]string, 0, n), make([]string, 0, n), make([]string, 0, n)
	ms, rank := make([]int64, 0, n), make([]uint64, 0, n)
	for i := range exposures {
		e := &exposures[i]
		site, anon, exp, variant = append(site, e.Site), append(anon, e.AnonymousID), append(exp, e.Experiment), append(variant, e.Variant)
		ms, rank = append(ms, e.FirstMs), append(rank, uint64(math.MaxInt64-e.FirstMs))
	}
	for i := range conversions {
		v := &conversions[i]
		site, anon, exp, variant = append(site, v.Site), append(anon, v.AnonymousID), append(exp, ""), append(variant, "")
		ms, rank = append(ms, v.LastMs), append(rank, uint64(max(v.LastMs, 0)))
	}
	return c.send(ctx, "visitors", insertVisitors, n, site, anon, exp, ms, variant, rank)
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
