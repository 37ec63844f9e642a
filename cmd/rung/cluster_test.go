package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer/stream/streamtest"
	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/preagg/stats"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink/clickhouse"
	"github.com/rungdev/rung/sink/clickhouse/chtest"
	"github.com/rungdev/rung/sink/sqlite"
)

// clusterWorkload makes the signals of n visitors, in rounds: round i holds the i-th
// signal of every visitor that has one. Every pageview of a visitor lands on the same
// page with the same utm, and every exposure shows the same variant, so with rounds
// posted one after another each visitor's signals arrive in order, and the stats do not
// depend on how the cluster interleaves its partitions: it must report exactly what one
// node reports.
func clusterWorkload(seed uint64, site string, visitors int) [][]map[string]any {
	r := rand.New(rand.NewPCG(seed, 2))
	var rounds [][]map[string]any
	for v := range visitors {
		anon := fmt.Sprintf("cluster-%06d", v)
		url := fmt.Sprintf("https://%s/lp%d?utm_source=%s", site, v%4, []string{"google", "news", "mail"}[v%3])
		variant := []string{"control", "bold"}[v%2]
		var journey []map[string]any
		for range 1 + r.IntN(3) {
			journey = append(journey, map[string]any{"type": "pageview", "url": url})
		}
		journey = append(journey, map[string]any{"type": "exposure", "experiment": "hero", "variant": variant})
		if r.Float64() < []float64{0.2, 0.35}[v%2] {
			journey = append(journey, map[string]any{"type": "event", "name": "form_submitted"})
		}
		for i, s := range journey {
			s["site"], s["anonymous_id"], s["event_id"] = site, anon, fmt.Sprintf("%s-%d", anon, i)
			if i == len(rounds) {
				rounds = append(rounds, nil)
			}
			rounds[i] = append(rounds[i], s)
		}
	}
	return rounds
}

// postRound posts one round in batches of up to 50, spread over the collectors from 8
// goroutines, and records every answer in l. Every signal is valid. A signal refused
// with "retry later" (JetStream unreachable for a moment, as while a NATS node dies and
// the collector's connection moves) is sent again with its event_id, as t.js does,
// until it is taken; any other answer is an error.
func postRound(t *testing.T, round []map[string]any, l *harness.Ledger, to ...*proc) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		work = make(chan []map[string]any)
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := w
			for batch := range work {
				for attempt := 0; len(batch) > 0; attempt++ {
					if attempt == 60 {
						t.Errorf("%d signals still refused after %d attempts", len(batch), attempt)
						break
					}
					if attempt > 0 {
						time.Sleep(250 * time.Millisecond)
					}
					n++
					req, ids := collectRequest(to[n%len(to)].url("/collect"), batch)
					resp, err := client.Do(req)
					if err != nil {
						l.Collect(ids, 0, nil, err)
						t.Errorf("post: %v", err)
						break
					}
					raw, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					var ans collectAnswer
					if err := json.Unmarshal(raw, &ans); err != nil ||
						(resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusServiceUnavailable) {
						l.Collect(ids, resp.StatusCode, raw, nil)
						t.Errorf("status %d: %s", resp.StatusCode, raw)
						break
					}
					for _, e := range ans.Errors {
						if !strings.Contains(e.Reason, "retry later") {
							t.Errorf("signal %d refused: %s", e.Index, e.Reason)
						}
					}
					var again []map[string]any
					for _, i := range l.Collect(ids, resp.StatusCode, raw, nil) {
						again = append(again, batch[i])
					}
					batch = again
				}
			}
		}()
	}
	for i := 0; i < len(round); i += 50 {
		work <- round[i:min(i+50, len(round))]
	}
	close(work)
	wg.Wait()
}

// TestCluster runs rung's cluster mode on real servers on loopback: a three-node NATS
// cluster holding the stream with three replicas, two collectors, two aggregators and a
// two-shard ClickHouse. Mid-run an aggregator is SIGKILLed and replaced, the other
// kills itself between a flush's raw rows and its rollups (RUNG_FAILPOINT) and is
// replaced, and a NATS node is killed. Then: the signals landed are the signals accepted, by id, none twice;
// reconcile finds the rollups equal to a recomputation from the raw signals (no rollup
// counted twice); and the landing-page and experiment stats equal those one `rung
// serve` reports for the same workload.
func TestCluster(t *testing.T) {
	const site = "cluster.example"
	rounds := clusterWorkload(11, site, 600)

	urls, killNATS := streamtest.StartCluster(t, 3)
	shards := chtest.StartServers(t, 2, func(s []*chtest.Server) string { return chtest.Cluster("rung", s...) })
	dsn := shards[0].DSN(fmt.Sprintf("rung_cluster_%08x", rand.Uint32()))
	// A leader election after a node dies takes seconds on two loaded cores: the
	// collectors wait up to 20 s for JetStream's ack, retrying, rather than the default 5.
	common := []string{"--nats", strings.Join(urls, ","), "--stream-replicas", "3",
		"--clickhouse", dsn, "--clickhouse-cluster", "rung"}
	collector := append(common[:len(common):len(common)], "--publish-timeout", "20s")
	aggregator := func(parts string, flush ...string) *proc {
		if flush == nil {
			flush = []string{"--flush-interval", "100ms", "--batch-size", "400"}
		}
		return startRung(t, "aggregate", append(append(common, "--partitions", parts, "--ack-wait", "2s"), flush...)...)
	}
	// The first owner of 0-31 holds what it reads and never flushes: when it dies, all of
	// it must come back to its replacement.
	aggA := aggregator("0-31", "--flush-interval", "1h", "--batch-size", "1000000")
	// Its second write (of the three or more its 1,000 signals take at --batch-size 400)
	// is cut after the raw rows.
	aggB := startRungEnv(t, []string{failpointVar + "=after-signals:2"}, "aggregate",
		append(common, "--partitions", "32-63", "--ack-wait", "2s", "--flush-interval", "100ms", "--batch-size", "400")...)
	collectors := []*proc{startServe(t, collector...), startServe(t, collector...)}
	for _, c := range collectors {
		waitReady(t, c)
	}

	l := harness.NewLedger()
	postRound(t, rounds[0], l, collectors...)
	postRound(t, rounds[1], l, collectors...)
	if t.Failed() {
		for _, c := range collectors {
			resp, err := http.Get(c.url("/metrics"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "rung_stream") && !strings.HasSuffix(l, " 0") {
					t.Log(l)
				}
			}
		}
		t.FailNow()
	}
	// The aggregator dies, as a crash would, holding signals it has not acked.
	harness.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if n := aggA.metric("rung_stream_read_total"); n == 0 {
			return fmt.Errorf("the doomed aggregator has read nothing yet")
		}
		return nil
	})
	aggA.kill()
	postRound(t, rounds[2], l, collectors...) // while no one owns 0-31
	aggA = aggregator("0-31")
	// A NATS node dies: the stream has two replicas left, and the collectors go on.
	killNATS(2)
	for _, r := range rounds[3:] {
		postRound(t, r, l, collectors...)
	}
	if t.Failed() {
		t.FailNow()
	}
	select {
	case <-aggB.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the aggregator of 32-63 did not reach its failpoint")
	}
	aggB = aggregator("32-63")

	drained(t, urls[0]) // the replacements have had, and stored, all they get again
	ctx := context.Background()
	ch, err := clickhouse.Open(ctx, dsn, clickhouse.Options{Writers: 1, Cluster: "rung"}, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.DropDatabase(context.Background()); ch.Close() })
	var landed []schemas.Signal
	acked, _ := l.Count(harness.Acked)
	harness.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		if landed, err = ch.Signals(ctx, 0, 1<<62); err != nil {
			return err
		}
		if len(landed) < acked {
			return fmt.Errorf("%d of %d accepted signals landed", len(landed), acked)
		}
		return nil
	})
	for i, c := range collectors {
		t.Logf("collector %d: publish retries %v, duplicates NATS dropped %v", i,
			c.metric("rung_stream_publish_retries_total"), c.metric("rung_stream_published_duplicates_total"))
	}
	for name, a := range map[string]*proc{"0-31": aggA, "32-63": aggB} {
		t.Logf("aggregator %s: read %v, redelivered %v, duplicates dropped %v, counted again %v", name, a.metric("rung_stream_read_total"),
			a.metric("rung_stream_redelivered_total"), a.metric("rung_aggregate_duplicates_total"), a.metric("rung_aggregate_recounted_total"))
	}
	dropped := aggA.dropped() + aggB.dropped() // an aggregator counts the batches the sink refused for good
	l.Check(t, harness.Outcome{Stored: copies(landed), Dropped: dropped})
	again := aggA.metric("rung_stream_redelivered_total")
	if again == 0 {
		t.Error("the replacement aggregator was given nothing again: the dead one's signals were not redelivered")
	}
	if aggB.metric("rung_aggregate_recounted_total") == 0 {
		t.Error("the replacement of 32-63 counted nothing again: its predecessor's failpoint left no raw rows without rollups")
	}
	t.Logf("%d signals accepted by 2 collectors, landed once each on 2 shards; %v redelivered to the replacement, %v of them already stored",
		acked, again, aggA.metric("rung_aggregate_duplicates_total"))

	out, err := runCmd(t, runReconcile, nil, "--clickhouse", dsn, "--clickhouse-cluster", "rung", "--from", "-1d", "--business", "none")
	if err != nil {
		t.Fatalf("reconcile: %v\n%s", err, out)
	}

	// rung bench drives both collectors like a fleet of browsers, then checks by
	// event_id what landed in the sharded ClickHouse, and the stats against its model.
	out, err = runCmd(t, runBench, nil, "--target", collectors[0].url("")+","+collectors[1].url(""),
		"--connections", "8", "--count", "400", "--batch", "5", "--clickhouse", dsn, "--clickhouse-cluster", "rung",
		"--quiet", "--json", "--verify-wait", "60s")
	if err != nil {
		t.Fatalf("rung bench against both collectors: %v\n%s", err, out)
	}
	var rep struct {
		Verification struct {
			Landed struct {
				Status           string
				Accepted, Stored int64
			}
			Stats struct{ Status string }
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench report: %v\n%s", err, out)
	}
	if v := rep.Verification; v.Landed.Status != "ok" || v.Landed.Accepted == 0 || v.Stats.Status != "ok" {
		t.Errorf("rung bench verification: %+v", v)
	}
	t.Logf("rung bench over both collectors: %d accepted, %d stored; stats %s",
		rep.Verification.Landed.Accepted, rep.Verification.Landed.Stored, rep.Verification.Stats.Status)

	// The same workload through one node, on its embedded store.
	dir := t.TempDir()
	one := startServe(t, "--data-dir", dir, "--flush-interval", "100ms")
	single := harness.NewLedger()
	for _, r := range rounds {
		postRound(t, r, single, one)
	}
	one.stop()
	lite, err := sqlite.Open(ctx, filepath.Join(dir, "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	for _, p := range collectors {
		p.stop()
	}
	aggA.stop()
	aggB.stop()
	sameStats(t, stats.NewQueries(lite, stats.Options{}), stats.NewQueries(ch, stats.Options{}), site)
}

// waitReady waits until p answers /readyz with 200: its stream has a leader.
func waitReady(t *testing.T, p *proc) {
	t.Helper()
	harness.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		resp, err := http.Get(p.url("/readyz"))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
}

// sameStats checks two stores report the same landing pages and experiment.
func sameStats(t *testing.T, want, got *stats.Queries, site string) {
	t.Helper()
	ctx := context.Background()
	from, to := time.Now().Add(-24*time.Hour), time.Now().Add(time.Hour)
	lw, err := want.LandingPages(ctx, stats.LandingQuery{Filter: stats.Filter{Site: site, From: from, To: to}})
	if err != nil {
		t.Fatal(err)
	}
	lg, err := got.LandingPages(ctx, stats.LandingQuery{Filter: stats.Filter{Site: site, From: from, To: to}})
	if err != nil {
		t.Fatal(err)
	}
	if lw.Sessions == 0 || !reflect.DeepEqual(lw.Pages, lg.Pages) || lw.Sessions != lg.Sessions || lw.Converted != lg.Converted {
		t.Errorf("landing pages differ:\n one node %d sessions %+v\n cluster  %d sessions %+v", lw.Sessions, lw.Pages, lg.Sessions, lg.Pages)
	}
	ew, err := want.Experiment(ctx, stats.ExperimentQuery{ID: "hero", Site: site, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	eg, err := got.Experiment(ctx, stats.ExperimentQuery{ID: "hero", Site: site, From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if ew.Visitors == 0 || !reflect.DeepEqual(ew.Variants, eg.Variants) {
		t.Errorf("experiment differs:\n one node %+v\n cluster  %+v", ew.Variants, eg.Variants)
	}
	t.Logf("one node and cluster agree: %d sessions, %d converted; hero: %d visitors", lg.Sessions, lg.Converted, eg.Visitors)
}
