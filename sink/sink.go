// Package sink owns where signals and rollups are stored: the Sink interface, its two
// implementations (sink/clickhouse for production, sink/sqlite for the embedded default),
// their DDL and migrations, and sinktest, the conformance suite both must pass.
package sink

import (
	"context"
	"errors"

	"github.com/rungdev/rung/schemas"
)

// Sink stores batches. Write is called concurrently by the buffer's flushers, each with
// its own batch; a Sink must be safe for that. Write retries what can be retried (the
// store is unreachable) until ctx is cancelled, and returns an error only when it gives
// up; a batch is then either wholly stored or not stored at all. Write does not keep the
// batch after it returns.
type Sink interface {
	Write(ctx context.Context, b *Batch) error
	// Ping reports whether the store answers now, for /readyz.
	Ping(ctx context.Context) error
	Close() error
}

// Batch is what one flush writes: the raw signals, and the rollups pre-aggregated from
// them.
type Batch struct {
	Signals []schemas.Signal
}

// Reset empties b for reuse.
func (b *Batch) Reset() {
	b.Signals = b.Signals[:0]
}

// ErrInvalidDSN: a store address that cannot be used.
var ErrInvalidDSN = errors.New("invalid store address")

// DefaultDatabase is the ClickHouse database rung uses unless told otherwise.
const DefaultDatabase = "rung"
