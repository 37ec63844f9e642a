package clickhouse

import (
	"context"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// A flush is two writes here, raw signals then rollup rows, and a writer may die
// between them. The counted table closes that gap: once a flush's rollup rows are
// written, it records the (anonymous_id, event_id) of every signal they count. A raw
// row without its key in counted is a signal whose rollups are missing, and three
// readers act on it:
//
//   - Resume leaves such rows out of the sessions it restores, so the sessionizer
//     starts from what the rollups hold;
//   - Uncounted lists them, for the writer that restored to count them at once;
//   - Landed reports them held but not counted, so a writer that gets them again (a
//     JetStream redelivery, a write-ahead log replay) rolls them up once more without
//     writing their raw rows again, and lists them in the Batch's Counted.
//
// Rows older than the table (a database made before it) count as counted: its first
// row, anonymous_id and event_id empty, holds in since_ms the time it was made.
//
// A writer killed after the rollup rows landed and before counted did leaves signals
// counted in the rollups but not in counted: the next writer counts them again (see
// CLUSTER.md, "A flush cut short").
var countedTable = table{"counted", `
			date         Date,
			anonymous_id String,
			event_id     String,
			since_ms     Int64`, `MergeTree
		PARTITION BY toYYYYMM(date)
		ORDER BY (anonymous_id, event_id)`}

const insertCounted = "INSERT INTO %s (date, anonymous_id, event_id, since_ms)"

// insertsWait bounds WaitInserts.
const insertsWait = 10 * time.Second

// openCounted reads, and on the first open of a database writes, the time before
// which every raw row counts as counted.
func (c *ClickHouse) openCounted(ctx context.Context) error {
	read := func() (n uint64, since int64, err error) {
		err = c.conn.QueryRow(ctx, "SELECT count(), min(since_ms) FROM "+c.db+".counted WHERE anonymous_id = '' AND event_id = ''").
			Scan(&n, &since)
		return n, since, err
	}
	n, since, err := read()
	if err != nil {
		return fmt.Errorf("read when %s.counted was made: %w", c.db, err)
	}
	if n == 0 {
		now := time.Now()
		mark := func(conn driver.Conn, table string) error {
			return c.send(ctx, dest{conn, c.db + "." + table}, "counted", insertCounted, 1,
				[]time.Time{now}, []string{""}, []string{""}, []int64{now.UnixMilli()})
		}
		if c.cluster == nil {
			err = mark(c.conn, "counted")
		} else {
			// On every node: each shard's Resume reads its own.
			err = c.cluster.eachNode(ctx, func(conn driver.Conn, _ clusterNode) error { return mark(conn, "counted_local") })
		}
		if err != nil {
			return fmt.Errorf("mark when %s.counted was made: %w", c.db, err)
		}
		if _, since, err = read(); err != nil {
			return fmt.Errorf("read when %s.counted was made: %w", c.db, err)
		}
	}
	c.countedSince = since
	return nil
}

// writeCounted records that the rollups of b's signals, and of those it counted again
// (Counted), are stored: on a cluster on each visitor's shard, as its raw rows are.
func (c *ClickHouse) writeCounted(ctx context.Context, b *sink.Batch) error {
	n := len(b.Signals) + len(b.Counted)
	if n == 0 {
		return nil
	}
	all := make([]*schemas.Signal, 0, n)
	for i := range b.Signals {
		all = append(all, &b.Signals[i])
	}
	for i := range b.Counted {
		all = append(all, &b.Counted[i])
	}
	send := func(conn driver.Conn, table string, keep func(*schemas.Signal) bool) error {
		var (
			date      []time.Time
			anon, ids []string
			since     []int64
		)
		for _, g := range all {
			if g.EventID == "" || !keep(g) {
				continue
			}
			date = append(date, time.UnixMilli(g.ReceivedAt).UTC())
			anon, ids, since = append(anon, g.AnonymousID), append(ids, g.EventID), append(since, 0)
		}
		if len(ids) == 0 {
			return nil
		}
		return c.send(ctx, dest{conn, c.db + "." + table}, "counted", insertCounted, len(ids), date, anon, ids, since)
	}
	if c.cluster == nil {
		return send(c.conn, "counted", func(*schemas.Signal) bool { return true })
	}
	var g errgroup.Group
	for s, conn := range c.cluster.shards {
		g.Go(func() error {
			return send(conn, "counted_local", func(sig *schemas.Signal) bool { return c.cluster.visitorShard(sig.AnonymousID) == s })
		})
	}
	return g.Wait()
}

// countedOf returns which of keys (stored raw rows, with their earliest received_ms)
// have their rollups stored; day bounds the look-up.
func (c *ClickHouse) countedOf(ctx context.Context, keys map[sink.Key]int64, day string) (map[sink.Key]bool, error) {
	out := make(map[sink.Key]bool, len(keys))
	ask, err := ext.NewTable("counted_keys", ext.Column("anonymous_id", "String"), ext.Column("event_id", "String"))
	if err != nil {
		return nil, err
	}
	n := 0
	for k, ms := range keys {
		out[k] = ms < c.countedSince
		if !out[k] {
			if err := ask.Append(k.AnonymousID, k.EventID); err != nil {
				return nil, fmt.Errorf("keep a key to look up: %w", err)
			}
			n++
		}
	}
	if n == 0 {
		return out, nil
	}
	rows, err := c.conn.Query(ch.Context(ctx, ch.WithExternalTable(ask)),
		"SELECT DISTINCT anonymous_id, event_id FROM "+c.db+".counted WHERE date >= toDate(@day) "+
			"AND anonymous_id IN (SELECT anonymous_id FROM counted_keys) AND (anonymous_id, event_id) IN counted_keys",
		ch.Named("day", day))
	if err != nil {
		return nil, fmt.Errorf("look up %d counted signals: %w", n, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k sink.Key
		if err := rows.Scan(&k.AnonymousID, &k.EventID); err != nil {
			return nil, fmt.Errorf("scan a counted event_id: %w", err)
		}
		out[k] = true
	}
	return out, rows.Err()
}

// Uncounted returns the raw signals received in the last windowMs before the newest
// whose rollups are not stored, oldest first: what a crash between a flush's two writes
// left, for a single writer to count again on start (its replacement gets nothing
// again from a stream). One scan of the window, and the window's keys of counted as
// a set on the server.
func (c *ClickHouse) Uncounted(ctx context.Context, windowMs int64) ([]schemas.Signal, error) {
	var newest int64
	if err := c.conn.QueryRow(ctx, "SELECT max(received_ms) FROM "+c.db+".signals").Scan(&newest); err != nil {
		return nil, fmt.Errorf("find the newest signal: %w", err)
	}
	since := max(newest-windowMs, c.countedSince)
	if newest < since {
		return nil, nil
	}
	out, err := c.query(ctx, "WHERE received_ms >= @since AND date >= toDate(@day) AND (anonymous_id, event_id) NOT IN "+
		"(SELECT anonymous_id, event_id FROM "+c.db+".counted WHERE date >= toDate(@day)) ORDER BY received_ms",
		ch.Named("since", since), ch.Named("day", day(since, -1)))
	if err != nil {
		return nil, fmt.Errorf("read the signals without rollups: %w", err)
	}
	return out, nil
}

// WaitInserts waits until the INSERTs into the signals tables that the servers are
// running now have ended: those of a writer that died mid-insert may still land after
// it, and a replacement that asked Landed before they did would store their rows again.
// Inserts that start later are not waited for, nor any for longer than
// insertsWait: an insert whose rows all arrived ends in a moment, and one still waiting
// for rows from a dead writer fails without storing anything.
func (c *ClickHouse) WaitInserts(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, insertsWait)
	defer cancel()
	wait := func(conn driver.Conn, table string) error {
		// Anchored: this very query names the table too.
		pattern := "INSERT INTO " + c.db + "." + table + " %"
		var ids []string
		for first := true; first || len(ids) > 0; first = false {
			q := "SELECT query_id FROM system.processes WHERE query LIKE @pattern"
			args := []any{ch.Named("pattern", pattern)}
			if !first {
				q += " AND query_id IN @ids"
				set := make([]any, len(ids))
				for i, id := range ids {
					set[i] = id
				}
				args = append(args, ch.Named("ids", ch.GroupSet{Value: set}))
			}
			rows, err := conn.Query(ctx, q, args...)
			if err != nil {
				if ctx.Err() != nil {
					return nil // waited long enough
				}
				return fmt.Errorf("look up inserts running into %s: %w", table, err)
			}
			ids = ids[:0]
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					rows.Close()
					return fmt.Errorf("scan a query id: %w", err)
				}
				ids = append(ids, id)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("look up inserts running into %s: %w", table, err)
			}
			if len(ids) > 0 {
				select {
				case <-time.After(50 * time.Millisecond):
				case <-ctx.Done():
					return nil
				}
			}
		}
		return nil
	}
	if c.cluster == nil {
		return wait(c.conn, "signals")
	}
	return c.cluster.eachNode(ctx, func(conn driver.Conn, _ clusterNode) error { return wait(conn, "signals_local") })
}
