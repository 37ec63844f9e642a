package stream

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// BenchmarkPublisherAppend publishes to the local nats-server into a file-stored stream
// of 64 partitions and waits for the acks, as a collector does before answering 202.
// The benchmark's own making of a unique event_id costs one allocation per signal.
func BenchmarkPublisherAppend(b *testing.B) {
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("signals=%d", n), func(b *testing.B) {
			p := benchPublisher(b)
			ss := signals("b", n, n)
			errs := make([]error, n)
			var id []byte
			seq := 0
			b.ReportAllocs()
			for b.Loop() {
				for _, s := range ss {
					seq++
					id = strconv.AppendInt(append(id[:0], "bench-"...), int64(seq), 10)
					s.EventID = string(id)
				}
				p.Append(context.Background(), ss, errs)
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/signal")
		})
	}
	// Many goroutines, one signal each: fasthttp handlers answering single events.
	b.Run("signals=1/parallel", func(b *testing.B) {
		p := benchPublisher(b)
		var seq atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			s := signals("b", 1, 1)
			errs := make([]error, 1)
			for pb.Next() {
				s[0].EventID = "bench-" + strconv.FormatInt(seq.Add(1), 10)
				s[0].AnonymousID = s[0].EventID
				p.Append(context.Background(), s, errs)
				if errs[0] != nil {
					b.Fatal(errs[0])
				}
			}
		})
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/signal")
	})
}

func benchPublisher(b *testing.B) *Publisher {
	nc, js := connect(b)
	cfg := newStream(b, js, StreamConfig{Partitions: 64})
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg}, metrics.NewSet())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	return p
}
