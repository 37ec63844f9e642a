package clickhouse

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/cespare/xxhash/v2"

	"github.com/rungdev/rung/sink"
)

// The cluster layout (Options.Cluster). Every table T is T_local on every node of the
// cluster, with the engine of the single-node layout, and a Distributed table T over
// them on every node, so every query reads T under the name it always had, whichever
// node it is sent to. A Distributed query aggregates on each shard and merges the
// partial states on the node it was sent to, so the argMax/min/max queries give the
// answers they give on one node; none relies on FINAL or on merges having run.
//
// Rows are placed by rung, not by the Distributed tables: ClickHouse 18.16 has no
// xxHash64, so a Distributed sharding key cannot compute the hash of anonymous_id that
// the buffer, the sessionizer and the JetStream partitions key their state by. Write
// splits each batch by that hash, xxhash64(anonymous_id) spread over the shards by
// weight as a Distributed table spreads its key, and inserts each part into its shard's
// local tables. The Distributed tables have no sharding key, so an INSERT into them
// fails (with several shards) instead of placing rows elsewhere.
//
// Placement is what makes the queries that correlate a visitor's rows right: all of a
// visitor's signals and visitors rows are on one shard, so the IN subqueries of the
// reconcile and resume queries can run shard-locally, against each shard's own rows.
// ClickHouse denies an IN over a Distributed table inside a query over one unless
// distributed_product_mode says what to do, and clickhouse-go cannot send that setting
// to 18.16 (it sends only integer settings to servers that old), so it must be in the
// profile of rung's user on the node the DSN names: 'local' (or 'global', right too but
// it ships each subquery's result to every shard). Open checks it.

// cluster is the nodes of one cluster of the servers' <remote_servers>, as the node the
// DSN names lists them in system.clusters.
type cluster struct {
	name   string
	nodes  []clusterNode
	shards []driver.Conn // writes of each shard, in shard_num order; fails over across its replicas
	slots  []int         // a hash h goes to shards[slots[h % len(slots)]]
	next   atomic.Uint64 // round robin of the rows that belong to no visitor
	base   ch.Options    // credentials and timeouts of the DSN, to reach each node
}

type clusterNode struct {
	shard, weight, replica uint32
	addr                   string // host:port
}

// ErrUnknownCluster is returned by Open when Options.Cluster names no cluster of the
// server's system.clusters.
var ErrUnknownCluster = errors.New("clickhouse cluster not configured")

// readCluster lists the nodes of cluster name from system.clusters.
func readCluster(ctx context.Context, conn driver.Conn, name string) ([]clusterNode, error) {
	rows, err := conn.Query(ctx, "SELECT shard_num, shard_weight, replica_num, host_address, port FROM system.clusters "+
		"WHERE cluster = ? ORDER BY shard_num, replica_num", name)
	if err != nil {
		return nil, fmt.Errorf("read system.clusters: %w", err)
	}
	defer rows.Close()
	var out []clusterNode
	for rows.Next() {
		var (
			n    clusterNode
			host string
			port uint16
		)
		if err := rows.Scan(&n.shard, &n.weight, &n.replica, &host, &port); err != nil {
			return nil, fmt.Errorf("scan system.clusters: %w", err)
		}
		n.addr = net.JoinHostPort(host, strconv.Itoa(int(port)))
		out = append(out, n)
	}
	return out, rows.Err()
}

// clusterNames lists the clusters the server knows, for the error that says Cluster
// named none of them.
func clusterNames(ctx context.Context, conn driver.Conn) string {
	rows, err := conn.Query(ctx, "SELECT DISTINCT cluster FROM system.clusters ORDER BY cluster")
	if err != nil {
		return "?"
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var s string
		if rows.Scan(&s) == nil {
			names = append(names, s)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// checkProductMode fails, permanently, unless the user's profile sets
// distributed_product_mode to a mode that runs rung's IN subqueries right.
func checkProductMode(ctx context.Context, conn driver.Conn) error {
	var mode string
	if err := conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'distributed_product_mode'").Scan(&mode); err != nil {
		return fmt.Errorf("read distributed_product_mode: %w", err)
	}
	if mode != "local" && mode != "global" {
		return permanent{fmt.Errorf("distributed_product_mode is %q for this user: set it to 'local' in the user's profile "+
			"(<profiles><default><distributed_product_mode>local</distributed_product_mode>, see sink/clickhouse/CLUSTER.md)", mode)}
	}
	return nil
}

// newCluster connects to each shard of nodes. base is the DSN's options.
func newCluster(name string, nodes []clusterNode, base ch.Options, conns int) (*cluster, error) {
	k := &cluster{name: name, nodes: nodes, base: base}
	for i := 0; i < len(nodes); {
		j := i
		var addrs []string
		for ; j < len(nodes) && nodes[j].shard == nodes[i].shard; j++ {
			addrs = append(addrs, nodes[j].addr)
		}
		conn, err := k.dial(addrs, conns)
		if err != nil {
			k.close()
			return nil, fmt.Errorf("connect to shard %d of cluster %s (%s): %w", nodes[i].shard, name, strings.Join(addrs, ", "), err)
		}
		for range nodes[i].weight { // a shard of weight 0 takes no new rows, as in a Distributed table
			k.slots = append(k.slots, len(k.shards))
		}
		k.shards = append(k.shards, conn)
		i = j
	}
	if len(k.slots) == 0 {
		k.close()
		return nil, permanent{fmt.Errorf("every shard of cluster %s has weight 0: no shard to write to", name)}
	}
	return k, nil
}

// dial opens a connection pool to addrs, the first that answers, with the DSN's user,
// password and settings.
func (k *cluster) dial(addrs []string, conns int) (driver.Conn, error) {
	o := k.base
	o.Addr = addrs
	o.ConnOpenStrategy = ch.ConnOpenInOrder
	o.MaxOpenConns, o.MaxIdleConns = conns, conns
	return ch.Open(&o)
}

// shard returns the index of the shard that holds the rows of hash h.
func (k *cluster) shard(h uint64) int { return k.slots[h%uint64(len(k.slots))] }

// visitorShard places a visitor's rows: by the hash every stateful part of rung keys
// a visitor by.
func (k *cluster) visitorShard(anonymousID string) int {
	return k.shard(xxhash.Sum64String(anonymousID))
}

// landingShard places a landing rollup row by a hash of its whole key, cell included:
// every version of the row then lands on one shard, where ReplacingMergeTree merges
// can replace the old ones (spread at random, the answers would be the same, since
// every query aggregates across shards, but old versions would never be merged away).
// The row has no visitor to go by: it sums many.
func (k *cluster) landingShard(l *sink.LandingCell) int {
	var d xxhash.Digest
	d.Reset()
	for _, s := range []string{l.Site, l.LandingPath, l.UTMSource, l.UTMMedium, l.UTMCampaign} {
		d.WriteString(s)
		d.Write([]byte{0})
	}
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], uint64(l.HourMs))
	binary.LittleEndian.PutUint64(b[8:], l.Cell)
	d.Write(b[:])
	return k.shard(d.Sum64())
}

// anyShard places rows that belong to no visitor and are never replaced (quarantined
// signals): round robin over the weighted slots, to spread the load as the weights say
// (a shard of weight 0 takes none).
func (k *cluster) anyShard() int { return k.shard(k.next.Add(1)) }

// eachNode runs f on every node of the cluster in turn, on a connection of its own.
func (k *cluster) eachNode(ctx context.Context, f func(conn driver.Conn, n clusterNode) error) error {
	for _, n := range k.nodes {
		conn, err := k.dial([]string{n.addr}, 1)
		if err != nil {
			return fmt.Errorf("connect to %s (shard %d replica %d): %w", n.addr, n.shard, n.replica, err)
		}
		err = f(conn, n)
		conn.Close()
		if err != nil {
			return fmt.Errorf("on %s (shard %d replica %d): %w", n.addr, n.shard, n.replica, err)
		}
	}
	return nil
}

// replicas reports how many replicas shard has.
func (k *cluster) replicas(shard uint32) int {
	n := 0
	for _, x := range k.nodes {
		if x.shard == shard {
			n++
		}
	}
	return n
}

func (k *cluster) close() error {
	var errs []error
	for _, c := range k.shards {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// quote makes s a ClickHouse string literal.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// migrateCluster creates the database and tabs on every node: each table as T_local,
// then the Distributed table T over the T_local of every shard, and adds the columns
// added since to both. First it checks what is there on every node, so a mistake
// leaves nothing made: a T that is not Distributed (a database made by the single-node
// layout), or a shard of several replicas without replicated local tables (rung writes
// a shard's rows to one of its replicas, and only a Replicated engine copies them to
// the others; rung does not make those tables: see CLUSTER.md).
func (c *ClickHouse) migrateCluster(ctx context.Context, tabs []table) error {
	k := c.cluster
	err := k.eachNode(ctx, func(conn driver.Conn, n clusterNode) error {
		for _, t := range tabs {
			if err := checkEngine(ctx, conn, c.db, t.name, func(e string) bool { return e == "" || e == "Distributed" },
				"Distributed: the database was made by the single-node layout (Options.Cluster empty)"); err != nil {
				return err
			}
			if r := k.replicas(n.shard); r > 1 {
				if err := checkEngine(ctx, conn, c.db, t.name+"_local", func(e string) bool { return strings.HasPrefix(e, "Replicated") },
					fmt.Sprintf("a Replicated*MergeTree, and shard %d has %d replicas: create the local tables as "+
						"replicated (see CLUSTER.md) before rung opens the cluster", n.shard, r)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return k.eachNode(ctx, func(conn driver.Conn, n clusterNode) error {
		if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+c.db); err != nil {
			return fmt.Errorf("create database %s: %w", c.db, err)
		}
		for _, t := range tabs {
			local := t.name + "_local"
			if err := conn.Exec(ctx, t.create(c.db, local)); err != nil {
				return fmt.Errorf("create table %s.%s: %w", c.db, local, err)
			}
			dist := "CREATE TABLE IF NOT EXISTS " + c.db + "." + t.name + " AS " + c.db + "." + local +
				" ENGINE = Distributed(" + quote(k.name) + ", " + quote(c.db) + ", " + quote(local) + ")"
			if err := conn.Exec(ctx, dist); err != nil {
				return fmt.Errorf("create table %s.%s: %w", c.db, t.name, err)
			}
			for _, name := range []string{local, t.name} { // the local table first: the Distributed one reads it
				if err := addColumns(ctx, conn, c.db, t.name, name); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// checkEngine fails, permanently, unless ok accepts the engine of db.name ("" when
// there is no such table); want says what it should have been.
func checkEngine(ctx context.Context, conn driver.Conn, db, name string, ok func(string) bool, want string) error {
	var engine string
	if err := conn.QueryRow(ctx, "SELECT any(engine) FROM system.tables WHERE database = ? AND name = ?", db, name).Scan(&engine); err != nil {
		return fmt.Errorf("read the engine of %s.%s: %w", db, name, err)
	}
	if !ok(engine) {
		if engine == "" {
			engine = "missing"
		}
		return permanent{fmt.Errorf("table %s.%s is %s, not %s", db, name, engine, want)}
	}
	return nil
}
