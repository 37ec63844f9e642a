package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/buffer/stream/streamtest"
	"github.com/rungdev/rung/internal/harness"
)

// TestClusterNATSOutage is what a cluster answer means across a NATS outage. A
// collector and an aggregator run on a NATS server that is killed under load and
// started again. Half the clients resend every signal refused, with its event_id,
// in whatever request comes next (as t.js does); the other half give a refused signal
// up. Then, by event_id: every signal answered 202 is stored once; nothing is stored
// twice; a signal never answered 202 is stored only if the collector counted an answer
// it could not be sure of (rung_stream_publish_unsure_total); while NATS was down the
// collector refused at once, publishing nothing; and `rung reconcile` is clean.
func TestClusterNATSOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("kills a NATS server under load; skipped in -short mode")
	}
	nats := streamtest.StartServer(t)
	dsn := testClickHouseDSN()
	dropAfter(t, dsn)
	common := []string{"--nats", nats.URL, "--clickhouse", dsn, "--stream-partitions", "8"}
	agg := startRung(t, "aggregate", append(common, "--flush-interval", "100ms", "--batch-size", "400", "--ack-wait", "2s")...)
	col := startServe(t, append(common, "--publish-timeout", "3s", "--relay=false")...)
	waitReady(t, col)

	l := harness.NewLedger()
	var (
		mu        sync.Mutex
		abandoned = map[string]bool{}
		statuses  = map[int]int{}
	)
	count := func(f func() int) int { mu.Lock(); defer mu.Unlock(); return f() }
	acked := func() int { n, _ := l.Count(harness.Acked); return n }
	ctx, stopNew := context.WithCancel(context.Background())
	var load sync.WaitGroup
	const posters = 8
	for w := range posters {
		load.Add(1)
		r := rand.New(rand.NewPCG(uint64(w), 16))
		resend := w%2 == 0
		go func() {
			defer load.Done()
			client := &http.Client{Timeout: 30 * time.Second}
			var pending []map[string]any // refused, to go again
			for seq := 0; ctx.Err() == nil || len(pending) > 0; {
				batch := pending
				pending = nil
				if ctx.Err() == nil {
					for range 1 + r.IntN(20) {
						seq++
						batch = append(batch, killSignal(r, fmt.Sprintf("outage-%d-%06d", w, seq)))
					}
				}
				r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
				req, ids := collectRequest(col.url("/collect"), batch)
				var again []int
				status := 0
				if resp, err := client.Do(req); err != nil {
					again = l.Collect(ids, 0, nil, err)
				} else {
					raw, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
					again = l.Collect(ids, status, raw, nil)
				}
				mu.Lock()
				statuses[status]++
				for _, id := range ids {
					delete(abandoned, id)
				}
				for _, i := range again {
					if resend {
						pending = append(pending, batch[i])
					} else {
						abandoned[ids[i]] = true
					}
				}
				mu.Unlock()
				if len(again) > 0 {
					time.Sleep(20 * time.Millisecond) // a client backs off
				}
			}
		}()
	}

	harness.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if n := acked(); n < 500 {
			return fmt.Errorf("%d signals acknowledged before the outage", n)
		}
		return nil
	})
	nats.Kill()
	harness.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if n := count(func() int { return statuses[http.StatusServiceUnavailable] }); n < 50 {
			return fmt.Errorf("%d requests refused during the outage", n)
		}
		return nil
	})
	nats.Start()
	before := acked()
	harness.CheckFor(t, 60*time.Second, 20*time.Millisecond, func() error {
		if n := acked(); n < before+500 {
			return fmt.Errorf("%d signals acknowledged since NATS came back, want 500", n-before)
		}
		return nil
	})
	stopNew()
	load.Wait() // the resenders have had every signal acknowledged

	store := []string{"--clickhouse", dsn}
	mu.Lock()
	defer mu.Unlock()
	want := l.Acked()
	harness.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		got := map[string]bool{}
		for _, s := range storedSignals(t, store) {
			got[s.EventID] = true
		}
		for id := range want {
			if !got[id] {
				return fmt.Errorf("acknowledged %s not stored yet", id)
			}
		}
		return nil
	})
	unsure := col.metric("rung_stream_publish_unsure_total")
	fast := col.metric(`rung_stream_publish_errors_total{reason="not_connected"}`)
	t.Logf("statuses %v; %d given up after a refusal; collector: %v unsure, %v refused at once; aggregator: %v duplicates dropped, %v recounted",
		statuses, len(abandoned), unsure, fast, agg.metric("rung_aggregate_duplicates_total"), agg.metric("rung_aggregate_recounted_total"))
	// A signal never acknowledged is stored only if the collector was unsure of its
	// publish; one acknowledged is stored once, whether resent or not.
	l.Check(t, harness.Outcome{Stored: copies(storedSignals(t, store)), Dropped: agg.dropped(), RefusedMayLand: int(unsure)})
	if fast == 0 {
		t.Error("no signal was refused at once while NATS was down")
	}
	if len(abandoned) == 0 {
		t.Error("no signal was given up after a refusal: the outage refused nothing")
	}
	reconcile(t, store)
	col.stop()
	agg.stop()
}

// TestAggregatorKilledAfterRaw kills an aggregator at the one moment a flush has half
// landed on ClickHouse: its raw rows stored, its rollup rows not (the failpoint
// RUNG_FAILPOINT=after-signals:N). Its replacement gets the batch again from JetStream
// and must count it without storing its raw rows twice: every signal accepted is
// stored once, by event_id, and `rung reconcile` finds the rollups equal to a
// recomputation from the raw signals.
func TestAggregatorKilledAfterRaw(t *testing.T) {
	if testing.Short() {
		t.Skip("kills an aggregator mid-flush; skipped in -short mode")
	}
	const site = "cluster.example"
	rounds := clusterWorkload(7, site, 300)
	nats := streamtest.StartServer(t)
	dsn := testClickHouseDSN()
	dropAfter(t, dsn)
	common := []string{"--nats", nats.URL, "--clickhouse", dsn, "--stream-partitions", "8"}
	aggregate := append(common, "--flush-interval", "100ms", "--batch-size", "400", "--ack-wait", "2s")
	doomed := startRungEnv(t, []string{failpointVar + "=after-signals:2"}, "aggregate", aggregate...)
	col := startServe(t, append(common, "--relay=false")...)
	waitReady(t, col)

	l := harness.NewLedger()
	posted, dead := 0, false
	for posted < len(rounds) && !dead {
		postRound(t, rounds[posted], l, col)
		if t.Failed() {
			t.FailNow()
		}
		posted++
		select {
		case err := <-doomed.done:
			dead = true
			doomed.done <- err // for the wait below
		default:
		}
	}
	select {
	case err := <-doomed.done:
		t.Logf("the aggregator died at its failpoint after %d of %d rounds: %v", posted, len(rounds), err)
	case <-time.After(60 * time.Second):
		t.Fatal("the aggregator did not reach its failpoint")
	}
	agg := startRung(t, "aggregate", aggregate...)
	for _, r := range rounds[posted:] {
		postRound(t, r, l, col)
	}
	if t.Failed() {
		t.FailNow()
	}

	store := []string{"--clickhouse", dsn}
	drained(t, nats.URL)
	l.Check(t, harness.Outcome{Stored: copies(storedSignals(t, store)), Dropped: agg.dropped()})
	recounted := agg.metric("rung_aggregate_recounted_total")
	t.Logf("the replacement counted %v again whose raw rows had landed without rollups, and dropped %v duplicates",
		recounted, agg.metric("rung_aggregate_duplicates_total"))
	if recounted == 0 {
		t.Error("the replacement counted nothing again: the failpoint left no raw rows without rollups")
	}
	reconcile(t, store)
	col.stop()
	agg.stop()
}

// drained waits until the stream of signals on the NATS server at url holds nothing:
// it is a work queue, so every signal in it has been stored and acknowledged.
func drained(t *testing.T, url string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	harness.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
		s, err := js.Stream(context.Background(), "RUNG_SIGNALS")
		if err != nil {
			return err
		}
		if n := s.CachedInfo().State.Msgs; n > 0 {
			return fmt.Errorf("the stream still holds %d messages", n)
		}
		return nil
	})
}
