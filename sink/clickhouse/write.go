package clickhouse

import (
	"context"
	"fmt"
	"math"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/rungdev/rung/sink"
)

const (
	insertLanding = "INSERT INTO %s (date, hour, site, landing_path, utm_source, utm_medium, " +
		"utm_campaign, cell, sessions, converted, version)"
	insertVisitors = "INSERT INTO %s (site, anonymous_id, experiment, ms, variant, rank)"
)

// writeRollups stores a group of flushes (group.go): m holds their rollup rows, fs the
// flushes. In two steps: the visitors rows and the keys of the signals the flushes
// count whose raw rows carry another flush's id (Counted, adopted), under the id of the
// first flush, concurrently; then the landing rows, if any, with every flush's marker,
// the commit point (counted.go). Each insert costs a round trip and a part on the
// server whatever its size, so inserts that may run together do, and the flush waits
// for the slowest instead of their sum. On a cluster each shard's rows go to its local
// tables, all shards concurrently too. The goroutines are the call's own and have
// returned when it does. One failing insert does not cut the others short: they keep
// ctx, whose inserters are reused (insert.go).
func (c *ClickHouse) writeRollups(ctx context.Context, m *sink.Batch, fs []flushed) error {
	var g errgroup.Group
	g.Go(func() error { return c.writeCounted(ctx, fs, fs[0].id) })
	g.Go(func() error { return c.writeAllVisitors(ctx, m) })
	if err := g.Wait(); err != nil {
		return err
	}
	if c.beforeLanding != nil {
		c.beforeLanding()
	}
	return c.writeAllLanding(ctx, m.Landing, fs)
}

// writeAllVisitors inserts m's exposures and conversions: on a cluster each visitor's
// into its shard's local table, the shards concurrently.
func (c *ClickHouse) writeAllVisitors(ctx context.Context, m *sink.Batch) error {
	if len(m.Exposures)+len(m.Conversions) == 0 {
		return nil
	}
	if c.cluster == nil {
		return c.writeVisitors(ctx, dest{c.conn, c.db + ".visitors"}, m.Exposures, m.Conversions)
	}
	k := c.cluster
	parts := make([]sink.Batch, len(k.shards))
	for i := range m.Exposures {
		p := &parts[k.visitorShard(m.Exposures[i].AnonymousID)]
		p.Exposures = append(p.Exposures, m.Exposures[i])
	}
	for i := range m.Conversions {
		p := &parts[k.visitorShard(m.Conversions[i].AnonymousID)]
		p.Conversions = append(p.Conversions, m.Conversions[i])
	}
	var g errgroup.Group
	for s, conn := range k.shards {
		if p := &parts[s]; len(p.Exposures)+len(p.Conversions) > 0 {
			g.Go(func() error {
				return c.writeVisitors(ctx, dest{conn, c.db + ".visitors_local"}, p.Exposures, p.Conversions)
			})
		}
	}
	return g.Wait()
}

// writeAllLanding inserts the landing rows with the markers of the flushes fs: on a
// cluster each row into the local table of its shard, with the markers on every shard
// (alone on a shard without rows), the shards concurrently.
func (c *ClickHouse) writeAllLanding(ctx context.Context, rows []sink.LandingCell, fs []flushed) error {
	now := time.Now().UnixMilli()
	markers := func(s, shards int) []sink.LandingCell {
		out := make([]sink.LandingCell, len(fs))
		for i, f := range fs {
			out[i] = markerRow(f.id, now, s, shards)
		}
		return out
	}
	if c.cluster == nil {
		return c.writeLanding(ctx, dest{c.conn, c.db + ".landing_hourly"}, rows, markers(0, 1))
	}
	k := c.cluster
	parts := make([][]sink.LandingCell, len(k.shards))
	for i := range rows {
		s := k.landingShard(&rows[i])
		parts[s] = append(parts[s], rows[i])
	}
	var g errgroup.Group
	for s, conn := range k.shards {
		g.Go(func() error {
			return c.writeLanding(ctx, dest{conn, c.db + ".landing_hourly_local"}, parts[s], markers(s, len(k.shards)))
		})
	}
	return g.Wait()
}

// writeLanding inserts rows and markers into d in one INSERT: one block, which the
// server stores whole or not at all within a partition (counted.go). An attempt after
// a failure first asks whether the first marker, and so the whole insert, landed
// though it failed; so does a writer that gives up, so that it does not abort a flush
// the store holds (the rows would then be superseded by the cell's next rows while the
// marker says its signals are counted).
func (c *ClickHouse) writeLanding(ctx context.Context, d dest, rows, markers []sink.LandingCell) error {
	n := len(rows) + len(markers)
	date, hour, site := make([]time.Time, n), make([]time.Time, n), make([]string, n)
	path, src, med, camp := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	cell, sess, conv, ver := make([]uint64, n), make([]int64, n), make([]int64, n), make([]uint64, n)
	marker := markers[0]
	for i := range n {
		var l *sink.LandingCell
		if i < len(rows) {
			l = &rows[i]
		} else {
			l = &markers[i-len(rows)]
		}
		h := time.UnixMilli(l.HourMs).UTC()
		date[i], hour[i], site[i] = h, h, l.Site
		path[i], src[i], med[i], camp[i] = l.LandingPath, l.UTMSource, l.UTMMedium, l.UTMCampaign
		cell[i], sess[i], conv[i], ver[i] = l.Cell, l.Sessions, l.Converted, l.Version
	}
	cols := []any{date, hour, site, path, src, med, camp, cell, sess, conv, ver}
	attempts := 0
	err := c.retry.Do(ctx, d.table, func() error {
		if attempts++; attempts > 1 {
			if landed, err := c.hasMarker(ctx, d, marker); err != nil || landed {
				return err
			}
		}
		return c.insert(ctx, d, insertLanding, cols)
	})
	if err != nil && attempts > 0 {
		check, cancel := context.WithTimeout(context.WithoutCancel(ctx), markerCheckWait)
		landed, cerr := c.hasMarker(check, d, marker)
		cancel()
		if cerr == nil && landed {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("insert %d rows into clickhouse: %w", n, err)
	}
	c.rollups["landing_hourly"].Add(len(rows))
	return nil
}

// hasMarker reports whether d's table holds marker.
func (c *ClickHouse) hasMarker(ctx context.Context, d dest, marker sink.LandingCell) (bool, error) {
	var n uint64
	err := d.conn.QueryRow(ctx, "SELECT count() FROM "+d.table+" WHERE "+markerWhere+" AND cell = @cell AND utm_source = @shard",
		append(markerArgs(marker.HourMs), ch.Named("cell", marker.Cell), ch.Named("shard", marker.UTMSource))...).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up the marker of flush %x: %w", marker.Cell, err)
	}
	return n > 0, nil
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
