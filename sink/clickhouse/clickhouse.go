// Package clickhouse is the production telemetry sink: ClickHouse over the native
// protocol (clickhouse-go/v2), columnar batch inserts with explicit column lists, several
// concurrent writers, and retries with backoff by the class of the error (classify.go).
//
// It stays inside what ClickHouse 18.16 (Debian's) and current releases both accept: no
// DateTime64, LowCardinality, TTL or date_trunc, and every INSERT names its columns.
//
// With Options.Cluster it shards the tables over a cluster of servers: local tables on
// every node, Distributed tables over them under the usual names for the queries, and
// each visitor's rows written to the shard of xxhash64(anonymous_id), the hash the rest
// of rung keys a visitor by. cluster.go says how, CLUSTER.md what the servers need and
// how to add replication.
package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/errgroup"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// ClickHouse is the ClickHouse Sink.
type ClickHouse struct {
	conn    driver.Conn
	db      string
	cluster *cluster // nil in the single-node layout
	// cols and counted keep idle columns, and inserters prepared INSERTs, so that flushes reuse
	// their memory: bounded free lists rather than sync.Pools, which the garbage
	// collector empties at every cycle, and a drain's large batches make cycles frequent.
	cols      chan *columns
	counted   chan *countedColumns
	inserters inserters

	retry sink.Retry // of every statement, by classify's class

	rows      *metrics.Counter
	read      *metrics.Counter            // signals read back, so a reader's cost can be seen
	rollups   map[string]*metrics.Counter // rows written, by table
	group     *group                      // rollup rows of concurrent flushes, written together
	abandoned *metrics.Counter

	// Raw rows received before this are counted whether or not counted holds them
	// (counted.go).
	countedSince int64
	// afterSignals, when set, is called once a Write's raw rows landed, before its
	// rollups: a failpoint for tests (Options.AfterSignals). beforeLanding likewise
	// (Options.BeforeLanding).
	afterSignals, beforeLanding func()
}

var _ sink.Sink = (*ClickHouse)(nil)

// Options tunes the sink; the zero value works.
type Options struct {
	Writers int // concurrent flushes; default 4 (each uses up to 4 connections at once)
	// MaxServerAttempts bounds the attempts of a statement that fails with a transient
	// error (the server overloaded, or an error classify does not know); default 5. An
	// unreachable server is retried until the context ends, a permanent error never
	// (classify.go).
	MaxServerAttempts int
	// GroupLinger is how long a flush's rollup rows may wait for those of the flushes
	// running alongside, to share their INSERT; default 50ms. It only waits for flushes
	// already under way.
	GroupLinger time.Duration
	// Cluster, when set, is the name of a cluster in the servers' <remote_servers>:
	// the tables are then sharded over its nodes, as local tables with Distributed
	// tables over them under the names of the single-node layout (cluster.go,
	// CLUSTER.md). The profile of the DSN's user must set distributed_product_mode to
	// 'local' (Open says so otherwise). Empty: one node, the tables as they are.
	Cluster string
	// ReadOnly opens the tables for reading: Open runs no DDL (no CREATE, no ALTER) and
	// fails with sink.ErrNotMigrated when a table is missing. Writers is then 1.
	ReadOnly bool
	// AfterSignals, when set, is called by Write once the batch's raw rows landed and
	// before its rollup rows are written: the moment a crash leaves raw rows without
	// their rollups, for tests that crash there.
	AfterSignals func()
	// BeforeLanding, when set, is called by the commit of a group of flushes once
	// their raw rows (carrying their ids), visitors rows and counted rows landed, before
	// the landing rows and the markers that commit them (counted.go): the moment a
	// crash leaves rows of flushes that never committed, for tests that crash there.
	BeforeLanding func()
}

// Open connects to the server named by dsn ("clickhouse://host:9000/rung"), creates the
// database and tables when absent (with Options.ReadOnly: checks they are there), and
// returns the sink. It retries the first connection
// until ctx ends, so rung may start before ClickHouse does.
func Open(ctx context.Context, dsn string, o Options, set *metrics.Set) (*ClickHouse, error) {
	opts, err := ch.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: clickhouse %q: %v", sink.ErrInvalidDSN, dsn, err)
	}
	if opts.Protocol != ch.Native {
		return nil, fmt.Errorf("%w: clickhouse %q: only the native protocol works with every supported server", sink.ErrInvalidDSN, dsn)
	}
	db := opts.Auth.Database
	if db == "" || db == "default" {
		db = sink.DefaultDatabase
	}
	if o.Writers <= 0 {
		o.Writers = 4
	}
	if o.ReadOnly {
		o.Writers = 1
	}
	if o.MaxServerAttempts <= 0 {
		o.MaxServerAttempts = 5
	}
	if o.GroupLinger <= 0 {
		o.GroupLinger = 50 * time.Millisecond
	}
	opts.Auth.Database = "default" // the database may not exist yet
	opts.MaxOpenConns = 4*o.Writers + 2
	opts.MaxIdleConns = 4*o.Writers + 2
	opts.DialTimeout = 5 * time.Second
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open clickhouse %s: %w", dsn, err)
	}
	c := &ClickHouse{
		conn:    conn,
		db:      db,
		rows:    set.GetOrCreateCounter(`rung_sink_rows_written_total{table="signals"}`),
		read:    set.GetOrCreateCounter(`rung_sink_rows_read_total{table="signals"}`),
		rollups: make(map[string]*metrics.Counter),
		retry: sink.Retry{
			Classify:    classify,
			MaxAttempts: o.MaxServerAttempts,
			Errors:      set.GetOrCreateCounter(`rung_sink_errors_total`),
			Retries:     set.GetOrCreateCounter(`rung_sink_retries_total`),
		},
		abandoned:     set.GetOrCreateCounter(`rung_sink_batches_abandoned_total`),
		afterSignals:  o.AfterSignals,
		beforeLanding: o.BeforeLanding,
	}
	c.cols = make(chan *columns, o.Writers)
	c.counted = make(chan *countedColumns, o.Writers)
	c.inserters = inserters{max: o.Writers, idle: make(map[dest][]*inserter)}
	c.group = newGroup(o.GroupLinger, c.writeRollups, set)
	for _, t := range append(rollupTables, "counted") {
		c.rollups[t] = set.GetOrCreateCounter(`rung_sink_rows_written_total{table="` + t + `"}`)
	}
	if o.Cluster != "" {
		var nodes []clusterNode
		err := c.retry.Do(ctx, "system.clusters", func() (err error) { nodes, err = readCluster(ctx, conn, o.Cluster); return err })
		if err == nil && len(nodes) == 0 {
			err = fmt.Errorf("%w: %s has no cluster %q in system.clusters (it has: %s)", ErrUnknownCluster,
				strings.Join(opts.Addr, ","), o.Cluster, clusterNames(ctx, conn))
		}
		if err == nil {
			err = checkProductMode(ctx, conn)
		}
		if err == nil {
			c.cluster, err = newCluster(o.Cluster, nodes, *opts, 4*o.Writers+2)
		}
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("open clickhouse %s: %w", dsn, err)
		}
	}
	if o.ReadOnly {
		err = c.retry.Do(ctx, db, func() error { return c.checkTables(ctx) })
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("open clickhouse %s: %w", dsn, err)
		}
		return c, nil
	}
	err = c.retry.Do(ctx, db, func() error { return c.migrate(ctx, tables) })
	if err == nil {
		err = c.openCounted(ctx)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("migrate clickhouse %s: %w", dsn, err)
	}
	return c, nil
}

// GroupSize is the mean number of flushes whose rollup rows shared an INSERT so far.
func (c *ClickHouse) GroupSize() float64 {
	if n := c.group.groups.Get(); n > 0 {
		return float64(c.group.flushes.Get()) / float64(n)
	}
	return 0
}

// Conn returns the connection, for the queries that read the sink.
func (c *ClickHouse) Conn() driver.Conn { return c.conn }

// Database returns the database the sink writes to.
func (c *ClickHouse) Database() string { return c.db }

// migrate creates the database and tabs when absent, in the layout of the options, and
// adds the columns added since a table was made.
func (c *ClickHouse) migrate(ctx context.Context, tabs []table) error {
	if c.cluster != nil {
		return c.migrateCluster(ctx, tabs)
	}
	for _, t := range tabs {
		// Writes to a Distributed table without a sharding key fail: say why now.
		if err := checkEngine(ctx, c.conn, c.db, t.name, func(e string) bool { return e != "Distributed" },
			"a local table: the database was made by the cluster layout (set Options.Cluster)"); err != nil {
			return err
		}
	}
	if err := c.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+c.db); err != nil {
		return fmt.Errorf("create database %s: %w", c.db, err)
	}
	for _, t := range tabs {
		if err := c.conn.Exec(ctx, t.create(c.db, t.name)); err != nil {
			return fmt.Errorf("create table %s.%s: %w", c.db, t.name, err)
		}
		if err := addColumns(ctx, c.conn, c.db, t.name, t.name); err != nil {
			return err
		}
	}
	return nil
}

// checkTables makes sure the tables Open would create are there, for a read-only open.
func (c *ClickHouse) checkTables(ctx context.Context) error {
	for _, t := range tables {
		var n uint64
		err := c.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", c.db, t.name).Scan(&n)
		if err != nil {
			return fmt.Errorf("look for table %s.%s: %w", c.db, t.name, err)
		}
		if n == 0 {
			return permanent{fmt.Errorf("no table %s.%s: %w", c.db, t.name, sink.ErrNotMigrated)}
		}
	}
	return nil
}

// addColumns adds to db.name, a table made from the table named table, the columns
// added to that since (18.16 has no ADD COLUMN IF NOT EXISTS: it looks first).
func addColumns(ctx context.Context, conn driver.Conn, db, table, name string) error {
	for _, a := range addedColumns {
		if a.table != table {
			continue
		}
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
			db, name, a.column).Scan(&n)
		if err != nil {
			return fmt.Errorf("look for column %s.%s: %w", name, a.column, err)
		}
		if n == 0 {
			if err := conn.Exec(ctx, "ALTER TABLE "+db+"."+name+" ADD COLUMN "+a.column+" "+a.typ); err != nil {
				return fmt.Errorf("add column %s.%s: %w", name, a.column, err)
			}
		}
	}
	return nil
}

// Write inserts the batch table by table, raw signals first, carrying the id of the
// flush, then the rollup rows, the landing rows last with the flush's marker that
// commits its count (counted.go), retrying each by the class of its error
// (classify.go); the error it gives up with is a *sink.WriteError. A table that landed
// is not written again when a later one fails; every rollup row is idempotent, so a
// flush retried as a whole counts once too. A flush without rollup rows is committed by
// its marker all the same: it changed the sessionizer's state, which a failed write
// rolls back. What follows the raw rows goes through the group commit (group.go).
func (c *ClickHouse) Write(ctx context.Context, b *sink.Batch) error {
	if b.Empty() {
		return nil
	}
	c.group.begin()
	f := flushed{b: b, id: newFlushID()}
	if len(b.Signals) > 0 {
		adopted, err := c.writeSignals(ctx, b, f.id)
		if err != nil {
			c.group.abandon()
			c.abandoned.Inc()
			return fmt.Errorf("insert %d signals into clickhouse: %w", len(b.Signals), err)
		}
		f.adopted = adopted
		if c.afterSignals != nil {
			c.afterSignals()
		}
	}
	if err := c.group.commit(ctx, f); err != nil {
		c.abandoned.Inc()
		return err
	}
	return nil
}

// writeSignals inserts the batch's signals, counted by flush: into the signals table,
// or on a cluster into each shard's local table the signals of the visitors it holds,
// the shards concurrently. A shard's rows that landed are not written again when
// another shard's fail, and a shard that fails does not cut short the others' inserts
// (which would leave it unknown whether they landed). It returns the signals a retry
// found stored by another flush (insertSignals).
func (c *ClickHouse) writeSignals(ctx context.Context, b *sink.Batch, flush uint64) ([]schemas.Signal, error) {
	if c.cluster == nil {
		return c.insertSignals(ctx, dest{c.conn, c.db + ".signals"}, b, flush, nil, 0)
	}
	k := c.cluster
	shards := make([]int, len(b.Signals))
	counts := make([]int, len(k.shards))
	for i := range b.Signals {
		shards[i] = k.visitorShard(b.Signals[i].AnonymousID)
		counts[shards[i]]++
	}
	adopted := make([][]schemas.Signal, len(k.shards))
	var g errgroup.Group
	for s, conn := range k.shards {
		if counts[s] > 0 {
			g.Go(func() (err error) {
				adopted[s], err = c.insertSignals(ctx, dest{conn, c.db + ".signals_local"}, b, flush, shards, s)
				return err
			})
		}
	}
	err := g.Wait()
	return slices.Concat(adopted...), err
}

// dest is where an INSERT goes: a connection and the table it names.
type dest struct {
	conn  driver.Conn
	table string
}

// insertSignals inserts into d the signals of b that fill takes for (shards, s). A
// retry sends only the rows d does not hold (missing), and returns the signals it
// found held by another flush's rows than this one's: their count is this flush's, and
// a counted row must say so (writeCounted), since no raw row of theirs carries it.
func (c *ClickHouse) insertSignals(ctx context.Context, d dest, b *sink.Batch, flush uint64, shards []int, s int) ([]schemas.Signal, error) {
	var k *columns
	select {
	case k = <-c.cols:
	default:
		k = newColumns()
	}
	k.fill(b, flush, shards, s)
	n, attempts := k.n, 0
	var adopted []schemas.Signal
	err := c.retry.Do(ctx, d.table, func() error {
		if attempts++; attempts > 1 {
			// The attempt before may have landed though it failed (a timeout after
			// the server took the rows): only what is missing goes again.
			rest, other, err := c.missing(ctx, d, b, flush, shards, s)
			if err != nil {
				return err
			}
			adopted = other
			k.reset()
			if k.fill(rest, flush, nil, 0); k.n == 0 {
				return nil
			}
		}
		return c.insert(ctx, d, insertSignals, k.list())
	})
	k.reset()
	select {
	case c.cols <- k:
	default:
	}
	if err != nil {
		return nil, err
	}
	c.rows.Add(n)
	return adopted, nil
}

// Ping checks the server answers, and on a cluster that every shard does.
func (c *ClickHouse) Ping(ctx context.Context) error {
	if err := c.conn.Ping(ctx); err != nil {
		return err
	}
	if c.cluster != nil {
		for s, conn := range c.cluster.shards {
			if err := conn.Ping(ctx); err != nil {
				return fmt.Errorf("shard %d: %w", s+1, err)
			}
		}
	}
	return nil
}

// Close closes the connections.
func (c *ClickHouse) Close() error {
	c.inserters.close()
	err := c.conn.Close()
	if c.cluster != nil {
		err = errors.Join(err, c.cluster.close())
	}
	return err
}

// VisitorSignals returns every signal of one visitor, oldest first.
func (c *ClickHouse) VisitorSignals(ctx context.Context, anonymousID string) ([]schemas.Signal, error) {
	return c.query(ctx, "WHERE anonymous_id = ? ORDER BY received_ms", anonymousID)
}

// Signals returns the signals received in [fromMs, toMs), oldest first.
func (c *ClickHouse) Signals(ctx context.Context, fromMs, toMs int64) ([]schemas.Signal, error) {
	return c.query(ctx, "WHERE received_ms >= ? AND received_ms < ? ORDER BY received_ms", fromMs, toMs)
}

// Newest returns the newest n signals received in [fromMs, toMs), oldest first. Only n
// rows come over the wire; the server still reads the range's partitions to find them.
func (c *ClickHouse) Newest(ctx context.Context, fromMs, toMs int64, n int) ([]schemas.Signal, error) {
	out, err := c.query(ctx, "WHERE received_ms >= ? AND received_ms < ? AND date >= toDate(?) AND date <= toDate(?) "+
		"ORDER BY received_ms DESC LIMIT ?", fromMs, toMs, day(fromMs, -1), day(toMs, 1), n)
	slices.Reverse(out)
	return out, err
}

func (c *ClickHouse) query(ctx context.Context, where string, args ...any) ([]schemas.Signal, error) {
	out, _, err := c.scanSignals(ctx, false, where, args...)
	return out, err
}

func (c *ClickHouse) scanSignals(ctx context.Context, withSession bool, where string, args ...any) ([]schemas.Signal, []int64, error) {
	q := "SELECT event_id, type, site, anonymous_id, received_ms, bot, url, path, referrer, utm_source, " +
		"utm_medium, utm_campaign, utm_term, utm_content, name, experiment, variant, value, props, session_ms, event_ms, seq FROM " +
		c.db + ".signals " + where
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("query signals: %w", err)
	}
	defer rows.Close()
	var (
		out      []schemas.Signal
		sessions []int64
	)
	for rows.Next() {
		var (
			g       schemas.Signal
			typ     string
			bot     uint8
			value   *float64
			session int64
		)
		if err := rows.Scan(&g.EventID, &typ, &g.Site, &g.AnonymousID, &g.ReceivedAt, &bot, &g.URL,
			&g.Path, &g.Referrer, &g.UTMSource, &g.UTMMedium, &g.UTMCampaign, &g.UTMTerm, &g.UTMContent,
			&g.Name, &g.Experiment, &g.Variant, &value, &g.Props, &session, &g.EventAt, &g.Seq); err != nil {
			return nil, nil, fmt.Errorf("scan signal: %w", err)
		}
		g.Type, g.Bot = schemas.ParseType(typ), bot == 1
		if value != nil {
			g.Value, g.HasValue = *value, true
		}
		out = append(out, g)
		c.read.Inc()
		if withSession {
			sessions = append(sessions, session)
		}
	}
	return out, sessions, rows.Err()
}

// DropDatabase removes the sink's database. Tests use it to clean up after themselves.
func (c *ClickHouse) DropDatabase(ctx context.Context) error {
	if !strings.HasPrefix(c.db, "rung_test_") {
		return fmt.Errorf("refusing to drop database %q: not a test database", c.db)
	}
	if c.cluster != nil {
		return c.cluster.eachNode(ctx, func(conn driver.Conn, _ clusterNode) error {
			return conn.Exec(ctx, "DROP DATABASE IF EXISTS "+c.db)
		})
	}
	return c.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+c.db)
}
