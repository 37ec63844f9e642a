package collector

import (
	"math"
	"sync"
	"time"
)

// limiter is a set of token buckets in a fixed table indexed by a hash of the key (a
// client address, a site). Memory is the table, whatever the number of keys: two keys
// that collide share a bucket, which only makes the limit stricter for both. No key is
// kept, so no client address outlives its request.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	seed  uint64
	mu    [64]sync.Mutex // stripes
	b     []bucket
}

type bucket struct {
	tokens float64
	last   int64 // Unix ns of the last refill; 0: a full bucket
}

func newLimiter(rate, burst float64, slots int, seed uint64) *limiter {
	if rate <= 0 {
		return nil
	}
	if burst < 1 {
		burst = math.Max(1, rate)
	}
	return &limiter{rate: rate, burst: burst, seed: seed, b: make([]bucket, slots)}
}

// take takes n tokens for the key whose xxhash is h, at now. When there are not enough
// it takes none and says how long until there will be.
func (l *limiter) take(h uint64, n float64, now time.Time) (ok bool, wait time.Duration) {
	i := (h ^ l.seed) % uint64(len(l.b))
	mu := &l.mu[i%uint64(len(l.mu))]
	mu.Lock()
	defer mu.Unlock()
	b := &l.b[i]
	t := now.UnixNano()
	if b.last == 0 {
		b.tokens = l.burst
	} else {
		b.tokens = math.Min(l.burst, b.tokens+float64(t-b.last)/1e9*l.rate)
	}
	b.last = t
	if b.tokens >= n {
		b.tokens -= n
		return true, 0
	}
	return false, time.Duration((n - b.tokens) / l.rate * 1e9)
}
