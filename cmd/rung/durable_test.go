package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink/clickhouse"
	"github.com/rungdev/rung/sink/sqlite"
)

// TestDurableUnderKill is the promise of --durability disk: a 202 means the signals are
// on disk. It SIGKILLs `rung serve --durability disk` at random moments under
// concurrent load (single signals and batches), restarts it each time, and records
// client-side how each send was answered (harness.Ledger). At the end every acknowledged
// signal is stored exactly once (the client never resends, so any copy is the server's),
// none refused and none never sent is stored, and `rung reconcile` finds the rollups equal to a
// recomputation from the raw signals. The seed is logged; RUNG_TEST_SEED replays one.
//
// On ClickHouse a flush is several inserts (raw rows carrying the flush's id; the
// visitors rows; the landing rows with the marker that commits the flush), and a kill
// between them or during one is what this test is for there too: no raw row is stored
// twice, and the raw rows of a flush whose landing insert never landed are counted
// again, once (sink/clickhouse/counted.go). Its first kill is the server's own, at the
// failpoint between a flush's raw rows and its rollups; the other flushers are
// anywhere in theirs.
func TestDurableUnderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a server ten times under load; skipped in -short mode")
	}
	for _, tc := range []struct {
		name string
		args func(t *testing.T, dir string) []string
		kill killPlan
	}{
		{"sqlite", func(t *testing.T, dir string) []string { return []string{"--data-dir", dir} }, killPlan{}},
		{"clickhouse", func(t *testing.T, dir string) []string {
			dsn := testClickHouseDSN()
			dropAfter(t, dsn)
			return []string{"--data-dir", dir, "--clickhouse", dsn}
		}, killPlan{failpoint: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			killTest(t, tc.args(t, t.TempDir()), tc.kill)
		})
	}
}

// killPlan is how a kill test kills the server.
type killPlan struct {
	// The first kill is the server's own, at the failpoint between a flush's raw rows
	// and its rollups (ClickHouse; one transaction on SQLite).
	failpoint bool
}

func killTest(t *testing.T, store []string, plan killPlan) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RUNG_TEST_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (RUNG_TEST_SEED=%d replays it)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 20))
	args := append([]string{"--durability", "disk", "--flush-interval", "150ms", "--batch-size", "400",
		"--relay=false"}, store...)

	var (
		url      atomic.Pointer[string]
		ledger   = harness.NewLedger()
		mu       sync.Mutex
		statuses = map[int]int{}
		failed   atomic.Int64 // requests without an answer: the server was killed under them
	)
	var env []string
	if plan.failpoint {
		env = []string{fmt.Sprintf("%s=after-signals:%d", failpointVar, 3+r.IntN(10))}
	}
	p := startRungEnv(t, env, "serve", args...)
	u := p.url("/collect")
	url.Store(&u)

	ctx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	const posters = 8
	for w := range posters {
		load.Add(1)
		wr := rand.New(rand.NewPCG(seed, uint64(w)))
		go func() {
			defer load.Done()
			client := &http.Client{Timeout: 5 * time.Second}
			for seq := 0; ctx.Err() == nil; {
				n := 1
				if wr.IntN(2) == 0 {
					n = 1 + wr.IntN(50)
				}
				batch := make([]map[string]any, n)
				for i := range batch {
					seq++
					batch[i] = killSignal(wr, fmt.Sprintf("kill-%d-%08d", w, seq))
				}
				req, ids := collectRequest(*url.Load(), batch)
				resp, err := client.Do(req)
				if err != nil {
					ledger.Collect(ids, 0, nil, err)
					failed.Add(1)
					time.Sleep(20 * time.Millisecond) // a restart is under way
					continue
				}
				raw, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				ledger.Collect(ids, resp.StatusCode, raw, err)
				if err != nil {
					failed.Add(1)
					continue
				}
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}

	const kills = 10
	replayed := 0.0
	retries := 0.0
	for k := range kills {
		if k == 0 && plan.failpoint {
			select {
			case <-p.done:
			case <-time.After(60 * time.Second):
				t.Fatal("the server did not reach its failpoint")
			}
			t.Log("kill 1 at the failpoint, between a flush's raw rows and its rollups")
		} else {
			time.Sleep(time.Duration(200+r.IntN(800)) * time.Millisecond)
			retries += p.metric("rung_sink_retries_total")
			p.kill()
		}
		start := time.Now()
		p = startServe(t, args...)
		up := time.Since(start)
		replayed += p.metric("rung_wal_replayed_records_total")
		u := p.url("/collect")
		url.Store(&u)
		t.Logf("kill %d: restarted in %v, %v signals replayed", k+1, up.Round(time.Millisecond), p.metric("rung_wal_replayed_records_total"))
	}
	time.Sleep(300 * time.Millisecond)
	stopLoad()
	load.Wait()
	cut := p.metric("rung_wal_cut_total")
	retries += p.metric("rung_sink_retries_total")
	dropped := p.dropped()
	p.stop()

	acked, sent := ledger.Count(harness.Acked)
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d kills; statuses %v; %d requests unanswered; %d signals sent, %d acknowledged; %v replayed; %v tails cut",
		kills, statuses, failed.Load(), sent, acked, replayed, cut)
	if acked == 0 || statuses[http.StatusAccepted] == 0 {
		t.Fatal("no signal acknowledged: the load never reached the server")
	}
	if replayed == 0 {
		t.Error("no restart replayed anything: the kills never caught a signal between its 202 and the sink")
	}
	t.Logf("sink retries over the run: %v", retries)
	ledger.Check(t, harness.Outcome{Stored: copies(storedSignals(t, store)), Dropped: dropped})
	reconcile(t, store)
}

// killSignal is one signal of the kill test's load: a few hundred visitors, each a
// mix of pageviews, goal events and exposures, so sessions and rollups are exercised.
func killSignal(r *rand.Rand, id string) map[string]any {
	b := map[string]any{"site": "kill.example", "anonymous_id": fmt.Sprintf("visitor-%04d", r.IntN(300)), "event_id": id}
	switch r.IntN(4) {
	case 0, 1:
		b["type"], b["url"] = "pageview", fmt.Sprintf("https://kill.example/p%d?utm_source=s%d", r.IntN(5), r.IntN(3))
	case 2:
		b["type"], b["name"] = "event", "form_submitted"
	default:
		b["type"], b["experiment"], b["variant"] = "exposure", "hero", []string{"control", "b"}[r.IntN(2)]
	}
	return b
}

// storedSignals reads every raw signal from the store that args name.
func storedSignals(t *testing.T, args []string) []schemas.Signal {
	t.Helper()
	var dir, dsn string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "--data-dir":
			dir = args[i+1]
		case "--clickhouse":
			dsn = args[i+1]
		}
	}
	ctx := context.Background()
	var got []schemas.Signal
	if dsn != "" {
		c, err := clickhouse.Open(ctx, dsn, clickhouse.Options{Writers: 1}, metrics.NewSet())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, err = c.Signals(ctx, 0, 1<<62); err != nil {
			t.Fatal(err)
		}
	} else {
		s, err := sqlite.Open(ctx, filepath.Join(dir, "telemetry.db"), metrics.NewSet())
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got, err = s.Signals(ctx, 0, 1<<62); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// reconcile runs `rung reconcile` on the store args name, as a user would, and fails
// the test unless it exits 0 having compared some sessions.
func reconcile(t *testing.T, args []string) {
	t.Helper()
	cmd := exec.Command(harness.RungBinary(t), append([]string{"reconcile", "--from", "-24h", "--business", "none"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rung reconcile: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`compared (\d+) sessions.*: (\d+) mismatches`).FindSubmatch(out)
	if m == nil || string(m[1]) == "0" {
		t.Fatalf("rung reconcile compared no sessions:\n%s", out)
	}
	t.Logf("rung reconcile: %s", bytes.TrimSpace(out))
}

// TestDurableTornTail kills a server whose signals are only in the log (the flush is put
// off), cuts its segment mid-record as a crash mid-write would, and restarts it: the
// server starts, counts the cut, and stores every signal before it exactly once.
func TestDurableTornTail(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--durability", "disk", "--flush-interval", "1h", "--batch-size", "100000", "--relay=false"}
	p := startServe(t, args...)
	sigs := generate(21, 200)
	l := harness.NewLedger()
	accepted := postAll(t, l, sigs, 1, p)
	p.kill()
	segs, err := filepath.Glob(filepath.Join(dir, walDir, "*.wal"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v (%v): want the one the killed server wrote", segs, err)
	}
	info, err := os.Stat(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(segs[0], info.Size()-7); err != nil { // inside the last record
		t.Fatal(err)
	}
	p = startServe(t, args...)
	cut := p.metric("rung_wal_cut_total")
	if cut != 1 {
		t.Errorf("rung_wal_cut_total %v, want 1", cut)
	}
	replayed := p.metric("rung_wal_replayed_records_total")
	if replayed != float64(len(accepted)-1) {
		t.Errorf("replayed %v records, want all %d accepted but the cut one", replayed, len(accepted)-1)
	}
	p.stop()
	// The one signal lost is the cut record's, counted by rung_wal_cut_total.
	l.Check(t, harness.Outcome{Stored: copies(storedSignals(t, args)), Dropped: int(cut)})
}
