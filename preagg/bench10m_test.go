package preagg

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/clickhouse"
)

// BenchmarkLandingQuery10M stores 10 million signals (30 days of three sites) in
// ClickHouse through the buffer and the sessionizer, then times the landing-page query
// answered from the rollups against the same query computed from the raw signals,
// alternating, and checks they agree. It is not part of go test ./... (a benchmark, and
// loading takes a minute or two). RUNG_BENCH_CLICKHOUSE_DB names a database to keep and
// reuse across runs (it is loaded once); without it a fresh rung_test_ database is made
// and dropped.
//
//	go test -run XXX -bench LandingQuery10M -benchtime 1x -timeout 60m ./preagg
func BenchmarkLandingQuery10M(b *testing.B) {
	const target = 10_000_000
	ctx := context.Background()
	addr := os.Getenv("RUNG_TEST_CLICKHOUSE")
	if addr == "" {
		addr = "clickhouse://127.0.0.1:9000"
	}
	db := os.Getenv("RUNG_BENCH_CLICKHOUSE_DB")
	keep := db != ""
	if !keep {
		db = fmt.Sprintf("rung_test_%08x", rand.Uint32())
	}
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	st, err := clickhouse.Open(octx, addr+"/"+db, clickhouse.Options{}, metrics.NewSet())
	cancel()
	if err != nil {
		b.Fatalf("ClickHouse is required: %v", err)
	}
	b.Cleanup(func() {
		if !keep {
			if err := st.DropDatabase(context.Background()); err != nil {
				b.Errorf("drop: %v", err)
			}
		}
		st.Close()
	})
	var stored uint64
	if err := st.Conn().QueryRow(ctx, "SELECT count() FROM "+db+".signals").Scan(&stored); err != nil {
		b.Fatal(err)
	}
	a := newAggregator(b, Config{})
	if stored < target {
		if stored > 0 {
			b.Fatalf("database %s holds %d signals: drop it or name another", db, stored)
		}
		start := time.Now()
		n := load(b, st, a, target)
		b.Logf("loaded %d signals in %v (%.0f signals/s)", n, time.Since(start).Round(time.Second), float64(n)/time.Since(start).Seconds())
	}
	var counts struct{ signals, landing, visitors uint64 }
	// landing_hourly's rows of an empty site are the flushes' markers, no rollup.
	for _, q := range []struct {
		table string
		n     *uint64
	}{{"signals", &counts.signals}, {"landing_hourly WHERE site != ''", &counts.landing}, {"visitors", &counts.visitors}} {
		if err := st.Conn().QueryRow(ctx, "SELECT count() FROM "+db+"."+q.table).Scan(q.n); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("rows: %d signals, %d landing_hourly, %d visitors", counts.signals, counts.landing, counts.visitors)

	f := sink.LandingFilter{FromMs: testBase, ToMs: testBase + 31*24*hour}
	rules := a.Rules()
	run := func(name string, query func() ([]sink.LandingCount, error)) (time.Duration, []sink.LandingCount) {
		start := time.Now()
		got, err := query()
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return time.Since(start), got
	}
	measure := func(label string) {
		var rolled, raw []time.Duration
		for i := 0; i < max(b.N, 3); i++ {
			d1, fromRollups := run("rollups", func() ([]sink.LandingCount, error) { return st.LandingCounts(ctx, f) })
			d2, fromRaw := run("raw", func() ([]sink.LandingCount, error) { return st.RecomputeLanding(ctx, f, rules) })
			if i == 0 {
				if fmt.Sprint(fromRollups) != fmt.Sprint(fromRaw) {
					b.Errorf("%s: the rollups answer\n%v\nthe raw signals\n%v", label, fromRollups, fromRaw)
				}
			}
			rolled, raw = append(rolled, d1), append(raw, d2)
		}
		r, w := medianDur(rolled), medianDur(raw)
		b.Logf("%s: landing pages from rollups %v (%v–%v), from raw signals %v (%v–%v): %.2f%%",
			label, r, minDur(rolled), maxDur(rolled), w, minDur(raw), maxDur(raw), 100*float64(r)/float64(w))
		b.ReportMetric(float64(r.Milliseconds()), label+"-rollups-ms")
		b.ReportMetric(float64(w.Milliseconds()), label+"-raw-ms")
	}
	measure("as-written")
	if err := st.Optimize(ctx); err != nil {
		b.Fatal(err)
	}
	if err := st.Conn().QueryRow(ctx, "SELECT count() FROM "+db+".landing_hourly WHERE site != ''").Scan(&counts.landing); err != nil {
		b.Fatal(err)
	}
	b.Logf("after OPTIMIZE FINAL: %d landing_hourly rows", counts.landing)
	measure("merged")
}

// load streams about n signals through the buffer and a into st.
func load(b *testing.B, st *clickhouse.ClickHouse, a *Aggregator, n int) int {
	b.Helper()
	buf := buffer.New(buffer.Config{}, a.FlushTo(st), metrics.NewSet())
	done := make(chan error, 1)
	go func() { done <- buf.Run(context.Background()) }()
	pushed := 0
	newWorkload(10).stream(testBase, 30*24, 1550, func(sigs []schemas.Signal) bool {
		for i := range sigs {
			if pushed >= n {
				return false
			}
			for {
				err := buf.Push(&sigs[i])
				if err == nil {
					break
				}
				if !errors.Is(err, buffer.ErrFull) {
					b.Fatal(err)
				}
				time.Sleep(100 * time.Microsecond) // the load generator backs off, as a client would
			}
			pushed++
		}
		return true
	})
	buf.Close()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return pushed
}

func medianDur(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func minDur(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = min(m, x)
	}
	return m
}

func maxDur(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = max(m, x)
	}
	return m
}
