package clickhouse

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/rungdev/rung/sink"
)

const (
	insertLanding = "INSERT INTO %s (date, hour, site, landing_path, utm_source, utm_medium, " +
		"utm_campaign, cell, sessions, converted, version)"
	insertVisitors = "INSERT INTO %s (site, anonymous_id, experiment, ms, variant, rank)"
)

// writeRollups inserts the batch's rollup rows, the two tables concurrently: each
// insert costs a round trip and a part on the server whatever its size, so the flush
// waits for the slowest one instead of their sum. On a cluster each shard's rows go to
// its local tables, all shards concurrently too. The goroutines are the call's own and
// have returned when it does. One failing insert does not cut the others short: they
// keep ctx, whose inserters are reused (insert.go).
func (c *ClickHouse) writeRollups(ctx context.Context, b *sink.Batch) error {
	var g errgroup.Group
	if c.cluster == nil {
		c.goRollups(ctx, &g, c.conn, "", b)
		return g.Wait()
	}
	k := c.cluster
	parts := make([]sink.Batch, len(k.shards))
	for i := range b.Landing {
		p := &parts[k.landingShard(&b.Landing[i])]
		p.Landing = append(p.Landing, b.Landing[i])
	}
	for i := range b.Exposures {
		p := &parts[k.visitorShard(b.Exposures[i].AnonymousID)]
		p.Exposures = append(p.Exposures, b.Exposures[i])
	}
	for i := range b.Conversions {
		p := &parts[k.visitorShard(b.Conversions[i].AnonymousID)]
		p.Conversions = append(p.Conversions, b.Conversions[i])
	}
	for s, conn := range k.shards {
		c.goRollups(ctx, &g, conn, "_local", &parts[s])
	}
	return g.Wait()
}

// goRollups starts the inserts of b's rollup rows into the tables of conn named with
// suffix.
func (c *ClickHouse) goRollups(ctx context.Context, g *errgroup.Group, conn driver.Conn, suffix string, b *sink.Batch) {
	if len(b.Landing) > 0 {
		g.Go(func() error { return c.writeLanding(ctx, dest{conn, c.db + ".landing_hourly" + suffix}, b.Landing) })
	}
	if len(b.Exposures)+len(b.Conversions) > 0 {
		g.Go(func() error {
			return c.writeVisitors(ctx, dest{conn, c.db + ".visitors" + suffix}, b.Exposures, b.Conversions)
		})
	}
}

func (c *ClickHouse) writeLanding(ctx context.Context, d dest, rows []sink.LandingCell) error {
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
		return c.send(ctx, d, "landing_hourly", insertLanding, n, date, hour, site, path, src, med, camp, cell, sess, conv, ver)
	}
	return nil
}

// writeVisitors inserts exposures and conversions into the visitors table, a
// conversion as the row of experiment "".
func (c *ClickHouse) writeVisitors(ctx context.Context, d dest, exposures []sink.Exposure, conversions []sink.Conversion) error {
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
	return c.send(ctx, d, "visitors", insertVisitors, n, site, anon, exp, ms, variant, rank)
}

// send inserts n rows given as columns into d, retrying by the error's class; table
// names the rollup for the metrics.
func (c *ClickHouse) send(ctx context.Context, d dest, table, query string, n int, cols ...any) error {
	err := c.retry.Do(ctx, d.table, func() error { return c.insert(ctx, d, query, cols) })
	if err != nil {
		return fmt.Errorf("insert %d rows into clickhouse: %w", n, err)
	}
	c.rollups[table].Add(n)
	return nil
}

// Optimize merges every rollup table's parts (OPTIMIZE ... FINAL), on a cluster every
// node's local tables, so tests can show the queries answer the same before and after
// ClickHouse's background merges.
func (c *ClickHouse) Optimize(ctx context.Context) error {
	optimize := func(conn driver.Conn, suffix string) error {
		for _, t := range rollupTables {
			if err := conn.Exec(ctx, "OPTIMIZE TABLE "+c.db+"."+t+suffix+" FINAL"); err != nil {
				return fmt.Errorf("optimize %s: %w", t+suffix, err)
			}
		}
		return nil
	}
	if c.cluster != nil {
		return c.cluster.eachNode(ctx, func(conn driver.Conn, _ clusterNode) error { return optimize(conn, "_local") })
	}
	return optimize(c.conn, "")
}
