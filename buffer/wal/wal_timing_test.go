package wal

import (
	"context"
	"testing"

	"github.com/VictoriaMetrics/metrics"
)

// BenchmarkAppendSync is one appender at a time: every Append waits for its own fsync.
func BenchmarkAppendSync(b *testing.B) {
	benchAppend(b, false)
}

// BenchmarkAppendSyncParallel is many appenders: they share fsyncs (group commit), so
// the time per Append falls as the appenders grow.
func BenchmarkAppendSyncParallel(b *testing.B) {
	benchAppend(b, true)
}

// benchAppend appends 50 records of 300 bytes per Append, a /collect batch's worth.
func benchAppend(b *testing.B, parallel bool) {
	l, err := Open(b.TempDir(), Config{}, metrics.NewSet(), quiet())
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	var batch []byte
	for range 50 {
		at := len(batch)
		batch = append(Begin(batch), make([]byte, 300)...)
		Seal(batch[at:])
	}
	one := func() {
		seg, err := l.Hold(50, len(batch))
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Append(context.Background(), batch, len(batch)); err != nil {
			b.Fatal(err)
		}
		l.Done(seg, 50)
	}
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for b.Loop() {
			one()
		}
		return
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			one()
		}
	})
}

// BenchmarkSeal is the framing cost of one 300-byte record.
func BenchmarkSeal(b *testing.B) {
	buf := append(Begin(nil), make([]byte, 300)...)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		Seal(buf)
	}
}
