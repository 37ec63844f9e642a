package clickhouse

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"golang.org/x/sync/errgroup"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// A flush is several inserts here, and a writer may die between any two. Which raw rows
// have their rollups stored is told by a flush id: every flush draws a random id F,
// its raw rows carry it (the signals table's flush column), and the landing insert is
// the commit point of the flush, because it is the one insert that is not idempotent (a
// landing row is a cell's cumulative count, and a recount goes to a new cell):
//
//   - the raw rows go first, carrying F; then the visitors rows (idempotent: the
//     earliest exposure and the latest conversion win);
//   - the landing rows go last, and the same INSERT block carries a marker row for F
//     (an empty site, cell F, no sessions: it adds nothing to a sum, and readers leave
//     out the keys that sum to nothing). ClickHouse writes a block whole or not at all
//     when its rows fall in one partition (one month; see CLUSTER.md for a block across
//     two), so the marker is there exactly when the landing rows are. Flushes whose
//     rollups are committed together (group.go) each have their marker in the block; a
//     group without landing rows writes its markers alone, because a flush without
//     rollup rows changed the sessionizer's state all the same (a session's last
//     activity), which it rolls back when the write fails.
//
// The counted table holds what a raw row cannot carry: one row per signal, its
// (anonymous_id, event_id) and the flush that counted it, for the signals a flush
// counts whose raw rows carry another flush's id: a signal held but not counted,
// counted again (Batch.Counted), or one a retried insert found stored by another
// flush (insertSignals). A row of the counted table per signal cost the server about
// as much as the raw row itself, so a flush that counts what it stores writes none.
// Before the flush column, every flush wrote its keys there (flush 0 when it had no
// landing rows, and then after its other rows).
//
// A signal is counted when one of its raw rows carries a flush whose marker exists, or
// it has a counted row with flush 0 or with a flush whose marker exists. Raw rows
// stored before the flush column carry 0, and their counted rows say. A writer killed
// before the landing insert leaves raw rows (and counted rows) of an F without a
// marker: those signals are not counted, and their recount is the only count in the
// landing rollup. Killed after it, the flush is whole. Three readers apply the rule:
//
//   - Resume leaves uncounted rows out of the sessions it restores, so the sessionizer
//     starts from what the rollups hold;
//   - Uncounted lists them, for the writer that restored to count them at once;
//   - Landed reports them held but not counted, so a writer that gets them again (a
//     JetStream redelivery, a write-ahead log replay) rolls them up once more without
//     writing their raw rows again, and lists them in the Batch's Counted.
//
// A writer of a release before the flush column reads every signal of a later one as
// not counted: writers of both must not share a database (stop the old, then start the
// new; there is no way back but a restore).
//
// On a cluster each shard's landing insert is an insert of its own, so every shard's
// carries a marker for F (one holding only the markers when the shard has no landing
// rows of the flush), each naming its shard in utm_source, and F counts once all
// shards have theirs (committed).
//
// Rows older than the table (a database made before it) count as counted: its first
// row, anonymous_id and event_id empty, holds in since_ms the time it was made.
var countedTable = table{"counted", `
			date         Date,
			anonymous_id String,
			event_id     String,
			since_ms     Int64,
			flush        UInt64`, `MergeTree
		PARTITION BY toYYYYMM(date)
		ORDER BY (anonymous_id, event_id)`}

const insertCounted = "INSERT INTO %s (date, anonymous_id, event_id, since_ms, flush)"

// markerSlack widens a marker look-up back from a signal's receive time: the marker is
// written after the signal was received, by the clock of the writer, which on a
// cluster is not the collector's that stamped the signal.
const markerSlack = int64(time.Hour / time.Millisecond)

// newFlushID returns a flush id for a flush's raw rows, counted rows and marker: never
// 0, which means confirmed in the counted table and "see the counted table" in the
// signals table.
func newFlushID() uint64 {
	for {
		if f := rand.Uint64(); f != 0 {
			return f
		}
	}
}

// markerRow returns the landing row that marks flush f committed, written at nowMs, on
// shard s of shards (0 of 1 on one node). Its version holds how many shards the flush
// was written over, so a flush stays committed when shards are added later.
func markerRow(f uint64, nowMs int64, s, shards int) sink.LandingCell {
	return sink.LandingCell{LandingKey: sink.LandingKey{HourMs: sink.HourMs(nowMs), UTMSource: strconv.Itoa(s)},
		Cell: f, Version: uint64(shards)}
}

// insertsWait bounds WaitInserts.
const insertsWait = 10 * time.Second

// markerCheckWait bounds the look-up, after a landing insert failed, of whether its
// marker landed all the same. It outlives the flush's context (a flush the store holds
// must not be taken for aborted because the writer was stopping), so it is short: at a
// hard stop with the store unreachable, every group's landing write waits this long.
const markerCheckWait = 2 * time.Second

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
				[]time.Time{now}, []string{""}, []string{""}, []int64{now.UnixMilli()}, []uint64{0})
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

// writeCounted records as counted by flush (once its marker is stored) the keys of the
// signals the flushes fs count whose raw rows carry another flush's id: those counted
// again (Counted) and those a retry found stored by another flush (adopted). On a
// cluster each on its visitor's shard, as its raw rows are. The columns are taken from
// a free list and go back to it emptied, as the signals' are (insert.go).
func (c *ClickHouse) writeCounted(ctx context.Context, fs []flushed, flush uint64) error {
	n := 0
	for _, f := range fs {
		n += len(f.b.Counted) + len(f.adopted)
	}
	if n == 0 {
		return nil
	}
	send := func(conn driver.Conn, table string, keep func(*schemas.Signal) bool) error {
		var k *countedColumns
		select {
		case k = <-c.counted:
		default:
			k = new(countedColumns)
		}
		defer func() {
			k.reset()
			select {
			case c.counted <- k:
			default:
			}
		}()
		for _, f := range fs {
			k.fill(f.b.Counted, flush, keep)
			k.fill(f.adopted, flush, keep)
		}
		if len(k.ids.v) == 0 {
			return nil
		}
		return c.send(ctx, dest{conn, c.db + "." + table}, "counted", insertCounted, len(k.ids.v), k.list()...)
	}
	var err error
	if c.cluster == nil {
		err = send(c.conn, "counted", nil)
	} else {
		var g errgroup.Group
		for s, conn := range c.cluster.shards {
			g.Go(func() error {
				return send(conn, "counted_local", func(sig *schemas.Signal) bool { return c.cluster.visitorShard(sig.AnonymousID) == s })
			})
		}
		err = g.Wait()
	}
	if err != nil {
		return fmt.Errorf("mark %d signals counted in clickhouse: %w", n, err)
	}
	return nil
}

// countedColumns are the columns of insertCounted being built.
type countedColumns struct {
	date      []time.Time
	anon, ids runs
	since     []int64
	flushes   []uint64
}

// fill adds the keys of signals that keep takes (all when keep is nil), but for those
// without an event_id, as counted by flush.
func (k *countedColumns) fill(signals []schemas.Signal, flush uint64, keep func(*schemas.Signal) bool) {
	for i := range signals {
		g := &signals[i]
		if g.EventID == "" || keep != nil && !keep(g) {
			continue
		}
		k.date = append(k.date, time.UnixMilli(g.ReceivedAt).UTC())
		k.anon.v, k.ids.v = append(k.anon.v, g.AnonymousID), append(k.ids.v, g.EventID)
		k.since, k.flushes = append(k.since, 0), append(k.flushes, flush)
	}
}

func (k *countedColumns) list() []any { return []any{k.date, &k.anon, &k.ids, k.since, k.flushes} }

// reset empties the columns, keeping their capacity, and drops their references into
// the batches.
func (k *countedColumns) reset() {
	clear(k.anon.v)
	clear(k.ids.v)
	k.date, k.anon.v, k.ids.v, k.since, k.flushes = k.date[:0], k.anon.v[:0], k.ids.v[:0], k.since[:0], k.flushes[:0]
}

// markerWhere selects the markers (see the top of this file) written from @marker_from.
const markerWhere = "site = '' AND landing_path = '' AND hour >= toDateTime(@marker_from) AND date >= toDate(@marker_day)"

// markerArgs binds markerWhere's parameters.
func markerArgs(fromMs int64) []any {
	from := seconds(sink.HourMs(fromMs - markerSlack))
	return []any{ch.Named("marker_from", from), ch.Named("marker_day", day(from*1000, -1))}
}

// committed returns which flushes written from fromMs have their markers stored (on a
// cluster, every shard's): those of ids, or all when ids is nil.
func (c *ClickHouse) committed(ctx context.Context, fromMs int64, ids map[uint64]bool) (map[uint64]bool, error) {
	out := make(map[uint64]bool, len(ids))
	if ids != nil && len(ids) == 0 {
		return out, nil
	}
	q := "SELECT cell FROM " + c.db + ".landing_hourly WHERE " + markerWhere
	args := markerArgs(fromMs)
	if ids != nil {
		set := make([]any, 0, len(ids))
		for f := range ids {
			set = append(set, f)
		}
		q += " AND cell IN @ids"
		args = append(args, ch.Named("ids", ch.GroupSet{Value: set}))
	}
	q += " GROUP BY cell HAVING uniqExact(utm_source) >= max(version)"
	rows, err := c.conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("look up the markers of flushes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f uint64
		if err := rows.Scan(&f); err != nil {
			return nil, fmt.Errorf("scan a flush marker: %w", err)
		}
		out[f] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up the markers of flushes: %w", err)
	}
	return out, nil
}

// committedTable returns the flushes written from fromMs whose markers are stored, as
// an external table named committed_flushes (column flush), for the queries that
// count a signal when "flush = 0 OR flush IN committed_flushes".
func (c *ClickHouse) committedTable(ctx context.Context, fromMs int64) (*ext.Table, error) {
	set, err := c.committed(ctx, fromMs, nil)
	if err != nil {
		return nil, err
	}
	t, err := ext.NewTable("committed_flushes", ext.Column("flush", "UInt64"))
	if err != nil {
		return nil, err
	}
	for f := range set {
		if err := t.Append(f); err != nil {
			return nil, fmt.Errorf("keep a committed flush: %w", err)
		}
	}
	return t, nil
}

// countedOf returns which of keys (stored raw rows) have their rollups stored; day
// bounds the look-up. A key is counted when one of its raw rows carries a flush whose
// markers are stored, which one look-up of those flushes answers for most keys, else
// when it has a counted row of flush 0 or of a flush whose markers are stored. On one
// node one query answers for the counted rows: the keys' rows whose flush is 0 or has
// its marker, the markers read through the prefix of landing_hourly's order that their
// empty site takes, narrowed to the flushes of these keys. On a cluster the markers of
// a flush are on every shard while a key's counted rows are on its visitor's, so the
// keys' counted rows are read with their flushes first, then committed looks those
// flushes up over all shards.
func (c *ClickHouse) countedOf(ctx context.Context, keys map[sink.Key]stored, day string) (map[sink.Key]bool, error) {
	out := make(map[sink.Key]bool, len(keys))
	from := int64(0)
	var carried map[uint64]bool
	for k, v := range keys {
		if out[k] = v.ms < c.countedSince; out[k] {
			continue
		}
		if from == 0 || v.ms < from {
			from = v.ms
		}
		for _, f := range v.flushes {
			if f != 0 {
				if carried == nil {
					carried = make(map[uint64]bool)
				}
				carried[f] = true
			}
		}
	}
	if carried != nil {
		done, err := c.committed(ctx, from, carried)
		if err != nil {
			return nil, err
		}
		for k, v := range keys {
			for _, f := range v.flushes {
				out[k] = out[k] || done[f]
			}
		}
	}
	ask, err := ext.NewTable("counted_keys", ext.Column("anonymous_id", "String"), ext.Column("event_id", "String"))
	if err != nil {
		return nil, err
	}
	n := 0
	for k := range keys {
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
	ofKeys := "FROM " + c.db + ".counted WHERE date >= toDate(@day) " +
		"AND anonymous_id IN (SELECT anonymous_id FROM counted_keys) AND (anonymous_id, event_id) IN counted_keys"
	q := "SELECT DISTINCT anonymous_id, event_id, flush " + ofKeys
	args := []any{ch.Named("day", day)}
	if c.cluster == nil {
		// Every row returned is counted.
		q = "SELECT DISTINCT anonymous_id, event_id " + ofKeys + " AND (flush = 0 OR flush IN (SELECT cell FROM " +
			c.db + ".landing_hourly WHERE " + markerWhere + " AND cell IN (SELECT flush " + ofKeys + ")))"
		args = append(args, markerArgs(from)...)
	}
	rows, err := c.conn.Query(ch.Context(ctx, ch.WithExternalTable(ask)), q, args...)
	if err != nil {
		return nil, fmt.Errorf("look up %d counted signals: %w", n, err)
	}
	defer rows.Close()
	// The keys counted by a flush whose marker is to be looked up, and those flushes.
	type keyFlush struct {
		k sink.Key
		f uint64
	}
	var (
		pending []keyFlush
		ids     map[uint64]bool
		k       sink.Key
		f       uint64 // stays 0 on one node
		dest    = []any{&k.AnonymousID, &k.EventID, &f}
	)
	if c.cluster == nil {
		dest = dest[:2]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan a counted event_id: %w", err)
		}
		if f == 0 {
			out[k] = true
			continue
		}
		if ids == nil {
			ids = make(map[uint64]bool)
		}
		pending, ids[f] = append(pending, keyFlush{k, f}), true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up %d counted signals: %w", n, err)
	}
	rows.Close() // its connection, for the next query
	if len(pending) == 0 {
		return out, nil
	}
	done, err := c.committed(ctx, from, ids)
	if err != nil {
		return nil, err
	}
	for _, p := range pending {
		if done[p.f] {
			out[p.k] = true
		}
	}
	return out, nil
}

// Uncounted returns the raw signals received in the last windowMs before the newest
// whose rollups are not stored, in the order they were counted in (event time, then
// arrival): what a crash between a flush's writes left, for a single writer to count
// again on start (its replacement gets nothing again from a stream). Not in the order
// received: a visitor's signals of one flush, counted again over several, would then
// find one placed later than the next, and its rollup time would move. A key is left
// out when any of its raw rows is counted, not only the row read: a signal stored
// twice is counted once. The server reads the window twice (its rows, and the keys any
// of whose rows carries a committed flush) and the counted table's keys once, after a
// look-up of the committed flushes.
func (c *ClickHouse) Uncounted(ctx context.Context, windowMs int64) ([]schemas.Signal, error) {
	var newest int64
	if err := c.conn.QueryRow(ctx, "SELECT max(received_ms) FROM "+c.db+".signals").Scan(&newest); err != nil {
		return nil, fmt.Errorf("find the newest signal: %w", err)
	}
	since := max(newest-windowMs, c.countedSince)
	if newest < since {
		return nil, nil
	}
	done, err := c.committedTable(ctx, since)
	if err != nil {
		return nil, fmt.Errorf("read the signals without rollups: %w", err)
	}
	out, err := c.query(ch.Context(ctx, ch.WithExternalTable(done)),
		"WHERE received_ms >= @since AND date >= toDate(@day) AND (anonymous_id, event_id) NOT IN "+
			"(SELECT anonymous_id, event_id FROM "+c.db+".signals WHERE received_ms >= @since AND date >= toDate(@day) "+
			"AND flush IN committed_flushes) AND (anonymous_id, event_id) NOT IN "+
			"(SELECT anonymous_id, event_id FROM "+c.db+".counted WHERE date >= toDate(@day) "+
			"AND (flush = 0 OR flush IN committed_flushes)) ORDER BY event_ms, seq",
		ch.Named("since", since), ch.Named("day", day(since, -1)))
	if err != nil {
		return nil, fmt.Errorf("read the signals without rollups: %w", err)
	}
	return out, nil
}

// WaitInserts waits until the INSERTs into the signals and landing tables that the
// servers are running now have ended: those of a writer that died mid-insert may still
// land after it, and a replacement that asked Landed, Uncounted or Resume before they
// did would store raw rows again, or count again a flush whose landing rows and marker
// then land. Inserts that start later are not waited for, nor any for longer than
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
	suffix := ""
	if c.cluster != nil {
		suffix = "_local"
	}
	each := func(f func(driver.Conn) error) error {
		if c.cluster == nil {
			return f(c.conn)
		}
		return c.cluster.eachNode(ctx, func(conn driver.Conn, _ clusterNode) error { return f(conn) })
	}
	for _, t := range []string{"signals", "landing_hourly"} {
		if err := each(func(conn driver.Conn) error { return wait(conn, t+suffix) }); err != nil {
			return err
		}
	}
	return nil
}
