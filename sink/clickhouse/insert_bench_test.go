package clickhouse

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// benchSignals returns n pageviews shaped like the collector's: a visitor id, a client
// event id, a URL with a query, a referrer and utm values.
func benchSignals(n int) []schemas.Signal {
	out := make([]schemas.Signal, n)
	base := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC).UnixMilli()
	for i := range out {
		v := strconv.Itoa(i % 5000)
		out[i] = schemas.Signal{
			Type: schemas.TypePageview, ReceivedAt: base + int64(i), Site: "example.com",
			AnonymousID: "0f8fad5b-d9cb-469f-a165-7067" + fmt.Sprintf("%08d", i%5000),
			EventID:     "e5a1c7de-4b1f-4f0e-9d0c-" + fmt.Sprintf("%012d", i),
			URL:         "https://example.com/blog/post-" + v + "?utm_source=newsletter&utm_medium=email",
			Path:        "/blog/post-" + v, Referrer: "https://www.google.com/",
			UTMSource: "newsletter", UTMMedium: "email",
		}
	}
	return out
}

// BenchmarkInsert measures the raw-signal insert path against a plain clickhouse-go
// Native insert of the same rows in one INSERT (fresh columns, as its documentation
// shows it). Every iteration inserts the same 100,000 signals each way in turn, so the
// load of a shared machine and server falls on all alike; it reports rows/s of each and
// the sink's rate over the baseline's, and the bytes each allocates per row.
//
//	go test -run '^$' -bench Insert -benchtime 10x ./sink/clickhouse
func BenchmarkInsert(b *testing.B) {
	const n = 100_000
	c := openTest(b)
	ctx := context.Background()
	signals := benchSignals(n)
	k := newColumns()
	k.fill(&sink.Batch{Signals: signals}, 0, nil, 0)
	ways := []struct {
		name string
		run  func() error
	}{
		{"clickhouse-go", func() error { return c.insertRaw(ctx, k) }},
		{"sink-5000", func() error { return c.writeBatches(ctx, signals, 5_000) }},
		{"sink-100000", func() error { return c.writeBatches(ctx, signals, n) }},
	}
	took := make([]time.Duration, len(ways))
	allocated := make([]uint64, len(ways))
	var before, after runtime.MemStats
	for b.Loop() {
		for i, w := range ways {
			runtime.ReadMemStats(&before)
			start := time.Now()
			if err := w.run(); err != nil {
				b.Fatalf("%s: %v", w.name, err)
			}
			took[i] += time.Since(start)
			runtime.ReadMemStats(&after)
			allocated[i] += after.TotalAlloc - before.TotalAlloc
		}
	}
	for i, w := range ways {
		b.ReportMetric(float64(n*b.N)/took[i].Seconds(), w.name+"-rows/s")
		b.ReportMetric(float64(allocated[i])/float64(n*b.N), w.name+"-B/row")
		if i > 0 {
			b.ReportMetric(took[0].Seconds()/took[i].Seconds(), w.name+"/clickhouse-go")
		}
	}
}

// writeBatches writes signals through Write, size at a time.
func (c *ClickHouse) writeBatches(ctx context.Context, signals []schemas.Signal, size int) error {
	for i := 0; i < len(signals); i += size {
		if err := c.Write(ctx, &sink.Batch{Signals: signals[i:min(i+size, len(signals))]}); err != nil {
			return err
		}
	}
	return nil
}

// insertRaw is the baseline: the rows of k, already in columns, through clickhouse-go's
// batch API as its documentation shows it.
func (c *ClickHouse) insertRaw(ctx context.Context, k *columns) error {
	batch, err := c.conn.PrepareBatch(ctx, fmt.Sprintf(insertSignals, c.db+".signals"))
	if err != nil {
		return err
	}
	defer batch.Close()
	for i, col := range k.list() {
		if r, ok := col.(*runs); ok {
			col = r.v
		}
		if err := batch.Column(i).Append(col); err != nil {
			return err
		}
	}
	return batch.Send()
}
