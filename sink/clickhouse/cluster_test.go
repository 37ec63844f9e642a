package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"
	"github.com/cespare/xxhash/v2"

	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/clickhouse/chtest"
	"github.com/rungdev/rung/sink/sinktest"
)

// startCluster starts two private servers, A and B, each configured with cluster
// "rung" (shard 1 = A, shard 2 = B), "rung_weighted" (the same with B weighing 2) and
// "rung_replicas" (one shard, A and B its replicas), and stops them when the test ends.
func startCluster(t *testing.T) [2]*chtest.Server {
	t.Helper()
	s := chtest.StartServers(t, 2, func(s []*chtest.Server) string {
		a, b := s[0], s[1]
		return chtest.Cluster("rung", a, b) +
			"<rung_weighted><shard>" + a.Replica() + "</shard><shard><weight>2</weight>" + b.Replica() + "</shard></rung_weighted>" +
			"<rung_replicas><shard>" + a.Replica() + b.Replica() + "</shard></rung_replicas>"
	})
	return [2]*chtest.Server{s[0], s[1]}
}

func conn(x *chtest.Server) (driver.Conn, error) {
	return ch.Open(&ch.Options{Addr: []string{x.Addr()}, DialTimeout: time.Second})
}

// openCluster opens a fresh test database in the cluster layout through server a, and
// drops it from every node when the test ends.
func openCluster(t *testing.T, a *chtest.Server, cluster string) *ClickHouse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Open(ctx, fmt.Sprintf("clickhouse://%s/rung_test_%08x", a.Addr(), rand.Uint32()), Options{Cluster: cluster}, metrics.NewSet())
	if err != nil {
		t.Fatalf("open cluster %s: %v", cluster, err)
	}
	t.Cleanup(func() {
		if err := c.DropDatabase(context.Background()); err != nil {
			t.Errorf("drop test database: %v", err)
		}
		c.Close()
	})
	return c
}

func TestCluster(t *testing.T) {
	s := startCluster(t)
	t.Run("Conformance", func(t *testing.T) {
		sinktest.Run(t, func(t *testing.T) sinktest.Store { return openCluster(t, s[0], "rung") })
	})
	t.Run("SameAsOneNode", func(t *testing.T) { sameAsOneNode(t, s, "rung", 1) })
	t.Run("Weighted", func(t *testing.T) { sameAsOneNode(t, s, "rung_weighted", 2) })
	t.Run("Migrate", func(t *testing.T) { migrateCluster(t, s) })
	t.Run("Quarantine", func(t *testing.T) { quarantineCluster(t, s) })
	t.Run("Layouts", func(t *testing.T) { layouts(t, s) })
	t.Run("ShardDown", func(t *testing.T) { shardDown(t, s) }) // last: it stops a server
}

// shardDown: with shard 2 stopped, Ping says so and a Write gives up when its context
// ends, its rows for shard 1 landed and shard 1 not held up; once shard 2 is back the
// same Write succeeds (the rows that had landed are stored twice, as after any retried
// flush: every query counts an event_id once).
func shardDown(t *testing.T, s [2]*chtest.Server) {
	ctx := context.Background()
	c := openCluster(t, s[0], "rung")
	b := &sink.Batch{Signals: workload()[:200]}
	share := 0
	for _, sig := range b.Signals {
		if c.cluster.visitorShard(sig.AnonymousID) == 0 {
			share++
		}
	}
	if share == 0 || share == len(b.Signals) {
		t.Fatalf("the batch has %d of %d signals for shard 1: it must span both", share, len(b.Signals))
	}
	s[1].Kill()    // a crash: quicker than a shutdown, which waits for shard 1's connections
	defer func() { // the other tests' cleanups need shard 2 back
		if !s[1].Running() {
			s[1].Start()
		}
	}()
	if err := c.Ping(ctx); err == nil || !strings.Contains(err.Error(), "shard 2") {
		t.Errorf("Ping with shard 2 down: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	err := c.Write(wctx, b)
	cancel()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write with shard 2 down: %v", err)
	}
	if n := count(t, s[0], c.db+".signals_local"); n != uint64(share) {
		t.Errorf("shard 1 holds %d signals, want its %d", n, share)
	}
	s[1].Start()
	if err := c.Write(ctx, b); err != nil {
		t.Fatalf("Write once shard 2 is back: %v", err)
	}
	if n := count(t, s[1], c.db+".signals_local"); n != uint64(len(b.Signals)-share) {
		t.Errorf("shard 2 holds %d signals, want its %d", n, len(b.Signals)-share)
	}
	if err := c.Ping(ctx); err != nil {
		t.Errorf("Ping once shard 2 is back: %v", err)
	}
}

// workload is a few hours of traffic of 300 visitors on two sites, in time order:
// pageviews with utm values, goals, exposures to an experiment, duplicates and bots.
func workload() []schemas.Signal {
	r := rand.New(rand.NewPCG(1, 2))
	base := sink.HourMs(1_700_000_000_000)
	paths := []string{"/", "/pricing", "/about", "/blog/x"}
	var out []schemas.Signal
	at := base
	for i := range 4000 {
		at += int64(r.IntN(4000))
		v := r.IntN(300)
		sig := schemas.Signal{ReceivedAt: at, Site: []string{"a.example", "b.example"}[v%2],
			AnonymousID: fmt.Sprintf("visitor-%03d", v), EventID: fmt.Sprintf("e-%05d", i)}
		switch k := r.IntN(10); {
		case k < 6:
			p := paths[r.IntN(len(paths))]
			sig.Type, sig.URL, sig.Path = schemas.TypePageview, "https://"+sig.Site+p, p
			sig.UTMSource = []string{"", "google", "news"}[r.IntN(3)]
		case k < 8:
			sig.Type, sig.Name = schemas.TypeEvent, []string{"form_submitted", "scrolled"}[r.IntN(2)]
		default:
			sig.Type, sig.Experiment, sig.Variant = schemas.TypeExposure, "hero", []string{"control", "b"}[r.IntN(2)]
		}
		sig.Bot = r.IntN(50) == 0
		if r.IntN(40) == 0 && len(out) > 0 {
			sig.EventID = out[len(out)-1].EventID // a retried beacon
		}
		out = append(out, sig)
	}
	return out
}

// tee writes each flush to two stores.
type tee [2]sink.Sink

func (w tee) Write(ctx context.Context, b *sink.Batch) error {
	for _, s := range w {
		if err := s.Write(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// sameAsOneNode writes one workload through the pre-aggregator into the one-node layout
// and the cluster, and checks the cluster holds every row on the shard its hash names,
// with rows on every shard, and answers every query as the one node does.
func sameAsOneNode(t *testing.T, s [2]*chtest.Server, cluster string, weightB int) {
	ctx := context.Background()
	one, many := openTest(t), openCluster(t, s[0], cluster)
	agg, err := preagg.New(preagg.Config{}, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	flush := agg.FlushTo(tee{one, many})
	signals := workload()
	for i := 0; i < len(signals); i += 250 {
		if err := flush(ctx, append([]schemas.Signal(nil), signals[i:min(i+250, len(signals))]...)); err != nil {
			t.Fatalf("flush: %v", err)
		}
	}

	// Answers: every query the one node answers, the cluster answers the same, before
	// and after merges.
	from, to := sink.HourMs(1_700_000_000_000), sink.HourMs(1_700_000_000_000)+6*3600_000
	rules := agg.Rules()
	check := func(when string) {
		t.Helper()
		for _, q := range []struct {
			name string
			f    func(c *ClickHouse) (any, error)
		}{
			{"Signals", func(c *ClickHouse) (any, error) {
				signals, err := c.Signals(ctx, from, to)
				sort.Slice(signals, func(i, j int) bool {
					return signals[i].EventID+strconv.FormatInt(signals[i].ReceivedAt, 10) < signals[j].EventID+strconv.FormatInt(signals[j].ReceivedAt, 10)
				})
				return signals, err
			}},
			{"LandingCounts", func(c *ClickHouse) (any, error) {
				return c.LandingCounts(ctx, sink.LandingFilter{FromMs: from, ToMs: to})
			}},
			{"LandingCounts a.example google", func(c *ClickHouse) (any, error) {
				return c.LandingCounts(ctx, sink.LandingFilter{Site: "a.example", FromMs: from, ToMs: to, UTMSource: "google"})
			}},
			{"VariantCounts", func(c *ClickHouse) (any, error) {
				return c.VariantCounts(ctx, sink.ExperimentFilter{Experiment: "hero", FromMs: from, ToMs: to})
			}},
			{"VariantCounts b.example", func(c *ClickHouse) (any, error) {
				return c.VariantCounts(ctx, sink.ExperimentFilter{Site: "b.example", Experiment: "hero", FromMs: from, ToMs: to})
			}},
			{"Experiments", func(c *ClickHouse) (any, error) { return c.Experiments(ctx, "") }},
			{"PreRolled", func(c *ClickHouse) (any, error) { return c.PreRolled(ctx, from, to, rules) }},
			{"Recompute", func(c *ClickHouse) (any, error) { return c.Recompute(ctx, from, to, rules) }},
			{"Recompute from +1h", func(c *ClickHouse) (any, error) { return c.Recompute(ctx, from+3600_000, to, rules) }},
			{"RecomputeLanding", func(c *ClickHouse) (any, error) {
				return c.RecomputeLanding(ctx, sink.LandingFilter{FromMs: from, ToMs: to}, rules)
			}},
		} {
			want, err := q.f(one)
			if err != nil {
				t.Fatalf("%s on one node: %v", q.name, err)
			}
			got, err := q.f(many)
			if err != nil {
				t.Fatalf("%s on the cluster: %v", q.name, err)
			}
			if size(want) == 0 {
				t.Errorf("%s: the workload gives no answer to compare", q.name)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s, %s: the cluster answers\n%+v\none node answers\n%+v", when, q.name, got, want)
			}
		}
	}
	check("before merges")
	if err := one.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	if err := many.Optimize(ctx); err != nil {
		t.Fatal(err)
	}
	check("after merges")
	placement(t, s, one, many, weightB)
}

// placement checks shard i holds exactly the rows whose hash it owns, and some, and
// that the shards hold, after merges, as many rows as one node does.
func placement(t *testing.T, s [2]*chtest.Server, one, many *ClickHouse, weightB int) {
	ctx := context.Background()
	// A visitor's hash h goes to the shard of weight slot h % total weight, as a
	// Distributed table places its sharding key.
	slots := []int{0}
	for range weightB {
		slots = append(slots, 1)
	}
	owner := func(h uint64) int { return slots[h%uint64(len(slots))] }
	k := many.cluster
	for table, q := range map[string]string{
		"signals":  "SELECT anonymous_id, '', toInt64(0), '', '', '', '', toUInt64(0) FROM %s.signals_local",
		"visitors": "SELECT anonymous_id, '', toInt64(0), '', '', '', '', toUInt64(0) FROM %s.visitors_local",
		// Markers (counted.go) are on every shard, and in no answer.
		"landing_hourly": "SELECT '', site, toInt64(toUInt32(hour)) * 1000, landing_path, utm_source, utm_medium, utm_campaign, cell FROM %s.landing_hourly_local WHERE site != ''",
	} {
		var total uint64
		for i, x := range s {
			conn, err := conn(x)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := conn.Query(ctx, fmt.Sprintf(q, many.db))
			if err != nil {
				t.Fatalf("%s on shard %d: %v", table, i+1, err)
			}
			n := 0
			for rows.Next() {
				var (
					anon string
					l    sink.LandingCell
				)
				if err := rows.Scan(&anon, &l.Site, &l.HourMs, &l.LandingPath, &l.UTMSource, &l.UTMMedium, &l.UTMCampaign, &l.Cell); err != nil {
					t.Fatal(err)
				}
				want := k.landingShard(&l)
				if anon != "" {
					want = owner(xxhash.Sum64String(anon))
				}
				if want != i {
					t.Errorf("%s: a row of %q %+v is on shard %d, its hash says %d", table, anon, l, i+1, want+1)
				}
				n++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			rows.Close()
			conn.Close()
			if n == 0 {
				t.Errorf("%s: shard %d holds no rows", table, i+1)
			}
			total += uint64(n)
		}
		var want, dist uint64
		where := ""
		if table == "landing_hourly" {
			where = " WHERE site != ''"
		}
		if err := one.conn.QueryRow(ctx, "SELECT count() FROM "+one.db+"."+table+where).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if err := many.conn.QueryRow(ctx, "SELECT count() FROM "+many.db+"."+table+where).Scan(&dist); err != nil {
			t.Fatal(err)
		}
		if total != want || dist != want {
			t.Errorf("%s: %d rows on the shards, %d through the Distributed table, %d on one node", table, total, dist, want)
		}
	}

}

// size is how many rows an answer has.
func size(v any) int {
	if r, ok := v.(*sink.Rollups); ok {
		return min(len(r.Sessions), len(r.Landing), len(r.Exposures))
	}
	return reflect.ValueOf(v).Len()
}

// migrateCluster: a cluster database made before signals had session_ms, event_ms, seq
// and flush gets the columns on every node's local and Distributed tables.
func migrateCluster(t *testing.T, s [2]*chtest.Server) {
	ctx := context.Background()
	c := openCluster(t, s[0], "rung")
	err := c.cluster.eachNode(ctx, func(conn driver.Conn, _ clusterNode) error {
		for _, col := range []string{"session_ms", "event_ms", "seq", "flush"} {
			for _, q := range []string{"ALTER TABLE " + c.db + ".signals DROP COLUMN " + col,
				"ALTER TABLE " + c.db + ".signals_local DROP COLUMN " + col} {
				if err := conn.Exec(ctx, q); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := c.migrate(ctx, tables); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	for _, x := range s {
		conn, err := conn(x)
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table IN ('signals', 'signals_local') AND name IN ('session_ms', 'event_ms', 'seq', 'flush')",
			c.db).Scan(&n); err != nil || n != 8 {
			t.Errorf("%s: session_ms, event_ms, seq and flush columns: %d of 8, %v", x.Addr(), n, err)
		}
		conn.Close()
	}
	if err := c.Write(ctx, &sink.Batch{Signals: workload()[:100]}); err != nil {
		t.Fatalf("Write after the migration: %v", err)
	}
}

// quarantineCluster: quarantined signals spread over the shards, read back newest
// first through the Distributed table, and pruned on every node.
func quarantineCluster(t *testing.T, s [2]*chtest.Server) {
	ctx := context.Background()
	c := openCluster(t, s[0], "rung")
	if err := c.MigrateQuarantine(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if err := c.WriteQuarantine(ctx, []schemas.Quarantined{{At: int64(1_700_000_000_000 + i), Site: "a.example", Code: "schema", Raw: "{}"}}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := c.Quarantined(ctx, "", 3)
	if err != nil || len(got) != 3 || got[0].At != 1_700_000_000_003 || got[2].At != 1_700_000_000_001 {
		t.Fatalf("Quarantined: %+v, %v", got, err)
	}
	for _, x := range s {
		if n := count(t, x, c.db+".quarantine_local"); n != 2 {
			t.Errorf("%s holds %d quarantined rows, want 2 (round robin)", x.Addr(), n)
		}
	}
	if err := c.PruneQuarantine(ctx, 1_700_000_000_002); err != nil {
		t.Fatal(err)
	}
	// ALTER ... DELETE runs in the background (a mutation).
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err = c.Quarantined(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) != 2 {
		t.Errorf("after pruning: %d rows, want 2", len(got))
	}
}

func count(t *testing.T, x *chtest.Server, table string) uint64 {
	t.Helper()
	conn, err := conn(x)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// layouts: a database opens only in the layout it was made in, a shard of replicas
// needs replicated tables, and an unknown cluster is named; each is refused before
// anything is made.
func layouts(t *testing.T, s [2]*chtest.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dsn := fmt.Sprintf("clickhouse://%s/rung_test_%08x", s[0].Addr(), rand.Uint32())
	one, err := Open(ctx, dsn, Options{}, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, dsn, Options{Cluster: "rung"}, metrics.NewSet())
	if err == nil || !strings.Contains(err.Error(), "single-node layout") {
		t.Errorf("a one-node database opened as a cluster: %v", err)
	}
	if n := count(t, s[1], "system.databases WHERE name = '"+one.db+"'"); n != 0 {
		t.Errorf("the refused Open made the database on the other shard")
	}
	if err := one.DropDatabase(ctx); err != nil {
		t.Error(err)
	}
	one.Close()

	many := openCluster(t, s[0], "rung")
	_, err = Open(ctx, "clickhouse://"+s[1].Addr()+"/"+many.db, Options{}, metrics.NewSet())
	if err == nil || !strings.Contains(err.Error(), "cluster layout") {
		t.Errorf("a cluster database opened as one node: %v", err)
	}

	// The Distributed tables have no sharding key: nothing can INSERT rows into them
	// where rung's queries would not expect them.
	err = many.conn.Exec(ctx, "INSERT INTO "+many.db+".signals (site, anonymous_id) VALUES ('a.example', 'v')")
	if err == nil || !strings.Contains(err.Error(), "no sharding key") {
		t.Errorf("an INSERT into the Distributed table: %v", err)
	}

	_, err = Open(ctx, fmt.Sprintf("clickhouse://%s/rung_test_%08x", s[0].Addr(), rand.Uint32()), Options{Cluster: "rung_replicas"}, metrics.NewSet())
	if err == nil || !strings.Contains(err.Error(), "Replicated") {
		t.Errorf("a shard of two replicas with plain MergeTree tables: %v", err)
	}
}

// An unknown cluster is an error that names the clusters the server has, at once.
func TestUnknownCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Open(ctx, testDSN(), Options{Cluster: "no_such_cluster"}, metrics.NewSet())
	if !errors.Is(err, ErrUnknownCluster) || !strings.Contains(err.Error(), `"no_such_cluster"`) ||
		!strings.Contains(err.Error(), "test_shard_localhost") {
		t.Fatalf("Open with an unknown cluster: %v", err)
	}
}

// A cluster whose node denies IN subqueries over Distributed tables (the default
// profile) is refused at once, saying which setting to change.
func TestClusterNeedsProductMode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Open(ctx, testDSN(), Options{Cluster: "test_cluster_two_shards_localhost"}, metrics.NewSet())
	if err == nil || !strings.Contains(err.Error(), "distributed_product_mode") {
		t.Fatalf("Open of a cluster under the default profile: %v", err)
	}
}
