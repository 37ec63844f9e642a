// Package batch owns the one rule every batcher in rung flushes by: a batch is due when
// it holds enough items, or enough bytes, or its oldest item has waited long enough. The
// buffer's flushers, the stream consumer and the quarantine writer each keep their own
// items; they ask a Policy when to hand them on.
package batch

import "time"

// Policy bounds a batch by count, bytes and age, like Bento's batch policy (count,
// byte_size, period). A zero field is no bound. Its methods do not allocate and are safe
// for concurrent use: a Policy is a value.
type Policy struct {
	Count  int           // items that fill a batch
	Bytes  int64         // bytes that fill a batch
	Period time.Duration // the longest the oldest item of a batch waits
}

// Full reports whether a batch of n items and size bytes has reached Count or Bytes.
func (p Policy) Full(n int, size int64) bool {
	return (p.Count > 0 && n >= p.Count) || (p.Bytes > 0 && size >= p.Bytes)
}

// Due reports whether a batch of n items and size bytes, whose oldest item has waited
// age, should be flushed now: it is not empty, and it is full or old enough.
func (p Policy) Due(n int, size int64, age time.Duration) bool {
	return n > 0 && (p.Full(n, size) || (p.Period > 0 && age >= p.Period))
}
