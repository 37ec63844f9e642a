package level

import "errors"

var (
	// ErrFull is returned by Async.Emit when the queue is at capacity; the event is
	// dropped and counted in Stats.Rejected.
	ErrFull = errors.New("async queue full")
	// ErrClosed is returned by Async.Emit after Shutdown or Kill began.
	ErrClosed = errors.New("async dispatcher closed")
)
