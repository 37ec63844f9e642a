package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
)

func TestBucketsTile(t *testing.T) {
	// Every bucket's top maps to it, and the next value to the next bucket: the buckets
	// cover the range with no gap and no overlap.
	for i := 0; i < numBuckets-1; i++ {
		hi := bucketHigh(i)
		if got := bucketOf(hi); got != i {
			t.Fatalf("bucketOf(bucketHigh(%d) = %d) = %d", i, hi, got)
		}
		if got := bucketOf(hi + 1); got != i+1 {
			t.Fatalf("bucketOf(%d) = %d, want %d", hi+1, got, i+1)
		}
		if lo := bucketHigh(i-1) + 1; i > 0 && float64(hi-lo) > RelativeError*float64(lo) {
			t.Fatalf("bucket %d [%d, %d] is wider than %v of its values", i, lo, hi, RelativeError)
		}
	}
}

func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func TestQuantileError(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	dists := []struct {
		name string
		draw func() int64
	}{
		{"log-uniform 1ns-100s", func() int64 { return int64(math.Pow(10, r.Float64()*11)) }},
		{"exponential 1ms", func() int64 { return int64(r.ExpFloat64() * 1e6) }},
		{"bimodal 200µs/50ms", func() int64 {
			if r.IntN(100) == 0 {
				return 50e6 + r.Int64N(1e6)
			}
			return 200e3 + r.Int64N(20e3)
		}},
		{"small integers", func() int64 { return r.Int64N(300) }},
	}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			h := NewHistogram()
			vals := make([]int64, 100_000)
			for i := range vals {
				vals[i] = d.draw()
				h.Record(time.Duration(vals[i]))
			}
			slices.Sort(vals)
			qs := []float64{0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 0.9999, 1}
			for range 50 {
				qs = append(qs, r.Float64())
			}
			for _, q := range qs {
				want, got := exactQuantile(vals, q), int64(h.Quantile(q))
				if got < want || float64(got-want) > RelativeError*float64(want) {
					t.Errorf("q%v = %d, exact %d: outside [exact, exact·(1+%v)]", q, got, want, RelativeError)
				}
			}
			if h.Max() != time.Duration(vals[len(vals)-1]) || h.Min() != time.Duration(vals[0]) || h.Count() != uint64(len(vals)) {
				t.Errorf("max %v min %v count %d; want %d %d %d", h.Max(), h.Min(), h.Count(), vals[len(vals)-1], vals[0], len(vals))
			}
			var sum float64
			for _, v := range vals {
				sum += float64(v)
			}
			if mean := sum / float64(len(vals)); math.Abs(float64(h.Mean())-mean) > 1+1e-9*mean {
				t.Errorf("mean %v, want %v", h.Mean(), mean)
			}
		})
	}
}

func TestMergeEqualsRecordingAll(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	all, a, b := NewHistogram(), NewHistogram(), NewHistogram()
	for i := range 10_000 {
		v := time.Duration(r.Int64N(1e9))
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(b)
	a.Merge(NewHistogram())
	if a.counts != all.counts || a.Count() != all.Count() || a.Max() != all.Max() || a.Min() != all.Min() {
		t.Fatal("merged histogram differs from one that recorded everything")
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v: %v merged, %v recorded", q, a.Quantile(q), all.Quantile(q))
		}
	}
}

func TestHistogramEdges(t *testing.T) {
	h := NewHistogram()
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Error("an empty histogram reports something other than 0")
	}
	h.Record(-5)              // clock skew: counted as 0
	h.Record(100 * time.Hour) // beyond the range: clamped, max exact
	if h.Quantile(1) != 100*time.Hour || h.Quantile(0.5) != 0 {
		t.Errorf("q1 %v q0.5 %v, want 100h and 0", h.Quantile(1), h.Quantile(0.5))
	}
}

func TestRecordAllocs(t *testing.T) {
	harness.SkipAllocsUnderRace(t)
	h := NewHistogram()
	if n := testing.AllocsPerRun(1000, func() { h.Record(1234567) }); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	h := NewHistogram()
	b.ReportAllocs()
	for i := range b.N {
		h.Record(time.Duration(i * 977))
	}
}
