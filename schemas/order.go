package schemas

import "sync/atomic"

// MaxLagMs bounds how far before its receive time a signal's event time may be placed:
// a day, as long as t.js keeps an undelivered signal. A client that claims more is
// placed at the bound.
const MaxLagMs = 24 * 60 * 60 * 1000

// EventTime derives a signal's event time from the time the server received its
// request, the time the client made it (ts) and the time the client sent the request
// (sentAt), the last two by the client's clock: received − (sentAt − ts), as Snowplow
// derives its timestamp. Only the difference of the client's two readings is used, so a
// client clock that is wrong by any constant shifts nothing. The result is clamped to
// [received − MaxLagMs, received]: a signal is never placed in the future (ts after
// sentAt) nor more than MaxLagMs in the past.
func EventTime(received, ts, sentAt int64) int64 {
	age := sentAt - ts
	switch {
	case age < 0:
		age = 0
	case age > MaxLagMs:
		age = MaxLagMs
	}
	return received - age
}

// seqShift is how many low bits of a sequence number count within one millisecond.
// Ms << seqShift stays below 2^63 until the year 36812; a process handing out more than
// 2^20 numbers in one millisecond runs ahead of its clock, which costs nothing but that.
const seqShift = 20

// Sequence hands out arrival sequence numbers: strictly increasing within a process, and
// a hybrid of the clock and a counter, so that a restarted process, or another
// collector of a cluster, continues above the numbers already stored (as long as its
// clock is not behind). Sequence numbers only order signals that share an event time;
// the zero Sequence is ready to use and safe for concurrent use.
type Sequence struct{ last atomic.Uint64 }

// Reserve takes n consecutive sequence numbers, none below nowMs's, and returns the
// first.
func (q *Sequence) Reserve(n int, nowMs int64) uint64 {
	floor := uint64(max(nowMs, 0)) << seqShift
	for {
		last := q.last.Load()
		first := max(last+1, floor)
		if q.last.CompareAndSwap(last, first+uint64(n)-1) {
			return first
		}
	}
}
