package bench

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into 2^subBits
// equal buckets, so a bucket is at most 1/128 of the values it holds wide.
const (
	subBits  = 7
	subCount = 1 << subBits
	// maxExp bounds the values held: below 2^(maxExp+subBits+1) ns, about 19 hours.
	// Larger values are clamped into the last bucket (Max still reports them exactly).
	maxExp     = 38
	numBuckets = (maxExp + 2) * subCount
)

// RelativeError is the histogram's bound on the error of a quantile, as a fraction of
// the true value: a reported quantile q' of a true quantile q has q <= q' <= q·(1+RelativeError).
const RelativeError = 1.0 / subCount

// Histogram counts durations in log-linear buckets, the layout of HdrHistogram: values
// below 128 ns each have a bucket, and above that every power of two has 128 buckets, so
// the relative error is bounded (RelativeError) over the whole range at a fixed 40 KiB.
// Recording is a few instructions and never allocates. A Histogram is not safe for
// concurrent use; the load generator gives each connection its own and merges them.
type Histogram struct {
	counts [numBuckets]uint64
	total  uint64
	min    int64
	max    int64
	sum    float64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	h.Reset()
	return h
}

// Reset empties h.
func (h *Histogram) Reset() {
	clear(h.counts[:])
	h.total, h.min, h.max, h.sum = 0, math.MaxInt64, 0, 0
}

func bucketOf(v int64) int {
	if v < subCount {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits - 1 // v>>e is in [subCount, 2·subCount)
	if e > maxExp {
		return numBuckets - 1
	}
	return (e+1)*subCount + int(uint64(v)>>uint(e)) - subCount
}

// bucketHigh is the largest value bucket i holds.
func bucketHigh(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	e := i/subCount - 1
	low := int64(i%subCount+subCount) << uint(e)
	return low + (1 << uint(e)) - 1
}

// Record counts one value.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)]++
	h.total++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// Merge adds every count of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.total == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest value recorded, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Min is the smallest value recorded, exactly; 0 when empty.
func (h *Histogram) Min() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Mean is the exact mean of the values recorded.
func (h *Histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Quantile returns the nearest-rank q-quantile (0 < q <= 1): the smallest recorded
// value v such that at least q of the values are <= v, rounded up to the top of its
// bucket, so it never understates a latency and overstates it by at most
// RelativeError. It never exceeds Max. 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			if i == numBuckets-1 {
				break // the overflow bucket: only Max is known
			}
			return time.Duration(min(bucketHigh(i), h.max))
		}
	}
	return time.Duration(h.max)
}
