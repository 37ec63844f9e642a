package sink

import (
	"context"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer/batch"
	"github.com/rungdev/rung/schemas"
)

// QuarantineStore keeps rejected signals; both sinks are one.
type QuarantineStore interface {
	WriteQuarantine(ctx context.Context, rows []schemas.Quarantined) error
	PruneQuarantine(ctx context.Context, beforeMs int64) error
}

// Quarantine takes rejected signals from the collector without blocking it, and writes
// them to the store in batches from one goroutine, which Run owns. What does not fit
// in its queue is dropped and counted: the quarantine is an audit aid, never back
// pressure on /collect.
type Quarantine struct {
	store     QuarantineStore
	retention time.Duration
	policy    batch.Policy // a write every Period, of at most Count rows
	queue     chan schemas.Quarantined

	kept, dropped, failed *metrics.Counter
}

// NewQuarantine makes a Quarantine writing to store, keeping rows for retention.
func NewQuarantine(store QuarantineStore, retention time.Duration, set *metrics.Set) *Quarantine {
	return &Quarantine{
		store:     store,
		retention: retention,
		policy:    batch.Policy{Count: 500, Period: time.Second},
		queue:     make(chan schemas.Quarantined, 1024),
		kept:      set.NewCounter(`rung_quarantine_rows_total{result="written"}`),
		dropped:   set.NewCounter(`rung_quarantine_rows_total{result="dropped"}`),
		failed:    set.NewCounter(`rung_quarantine_rows_total{result="failed"}`),
	}
}

// Keep queues q. It copies the strings it keeps, since they point into a request body.
func (q *Quarantine) Keep(r schemas.Quarantined) {
	if len(r.Raw) > schemas.MaxQuarantineRaw {
		r.Raw = r.Raw[:schemas.MaxQuarantineRaw]
	}
	r.Site, r.Pointer, r.Message, r.Raw = clone(r.Site), clone(r.Pointer), clone(r.Message), clone(r.Raw)
	select {
	case q.queue <- r:
	default:
		q.dropped.Inc()
	}
}

func clone(s string) string { return string(append([]byte(nil), s...)) }

// Run writes what is queued, at most once a policy period and at most a full batch at a
// time, so a flood of bad signals costs the store a bounded write rate; and it prunes
// rows past the retention every hour. It returns when ctx is done, after writing a last
// batch of what was queued then.
func (q *Quarantine) Run(ctx context.Context) {
	tick := time.NewTicker(q.policy.Period)
	defer tick.Stop()
	var rows []schemas.Quarantined
	lastPrune := time.Time{}
	flush := func(ctx context.Context) {
		for !q.policy.Full(len(rows), 0) {
			select {
			case r := <-q.queue:
				rows = append(rows, r)
				continue
			default:
			}
			break
		}
		if len(rows) == 0 {
			return
		}
		if err := q.store.WriteQuarantine(ctx, rows); err != nil {
			q.failed.Add(len(rows))
		} else {
			q.kept.Add(len(rows))
		}
		rows = rows[:0]
	}
	for {
		select {
		case <-ctx.Done():
			flush(context.Background())
			return
		case <-tick.C:
		}
		flush(ctx)
		if time.Since(lastPrune) > time.Hour {
			lastPrune = time.Now()
			q.store.PruneQuarantine(ctx, time.Now().Add(-q.retention).UnixMilli())
		}
	}
}
