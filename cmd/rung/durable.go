package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/buffer/stream"
	"github.com/rungdev/rung/buffer/wal"
	"github.com/rungdev/rung/collector"
	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// walDir is where --durability disk keeps its write-ahead log, under --data-dir.
const walDir = "wal"

// replayCheck is how many logged signals a replay checks against the sink at a time,
// then flushes in batches of --batch-size. One look-up per flush made a restart slow:
// a look-up reads every row of its visitors from sink.ResendWindow back (on SQLite,
// through the visitor's index), so with few visitors, each in every flush, a replay
// read the whole day's rows once per flush.
const replayCheck = 10_000

// openLog opens the write-ahead log under --data-dir and delivers what it holds from
// the last run, before anything is served: its signals go through the flush path
// (sessionizer, then sink) in the order they were logged, and the segments are deleted
// once the sink holds them. A signal may have landed before the crash: as with a batch
// JetStream redelivers (see runAggregate), the sink is asked which it holds, their raw
// rows are not written again, and the sessionizer, restored from the sink, counts them
// once. It returns the log and how many signals it replayed.
func openLog(ctx context.Context, cfg *serveConfig, agg *preagg.Aggregator, s store, set *metrics.Set, log *slog.Logger) (*wal.Log, int, error) {
	l, err := wal.Open(filepath.Join(cfg.DataDir, walDir), wal.Config{MaxBytes: cfg.WALBytes}, set, log)
	if err != nil {
		return nil, 0, err
	}
	w := &skipStored{w: s}
	flush := agg.FlushTo(w)
	var batch []schemas.Signal
	n := 0
	deliver := func() error {
		if len(batch) == 0 {
			return nil
		}
		kept, stored, _, err := fresh(ctx, s, batch)
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		w.stored = stored
		if err := flushEach(ctx, flush, kept, cfg.BatchSize); err != nil {
			return fmt.Errorf("replay %d signals from the write-ahead log: %w", len(batch), err)
		}
		n += len(batch)
		clear(batch)
		batch = batch[:0]
		return nil
	}
	err = l.Replay(func(rec []byte) error {
		batch = append(batch, schemas.Signal{})
		if err := stream.Parse(rec, &batch[len(batch)-1]); err != nil {
			return fmt.Errorf("write-ahead log record %d: %w", n+len(batch), err)
		}
		if len(batch) < max(cfg.BatchSize, replayCheck) {
			return nil
		}
		return deliver()
	})
	if err == nil {
		err = deliver()
	}
	if err == nil {
		err = l.Forget()
	}
	if err != nil {
		l.Close()
		return nil, 0, err // the log stays as it is, for the next start
	}
	return l, n, nil
}

// halfWritten is a store whose flush is several writes (ClickHouse: raw rows carrying
// the flush's id, the visitors rows, then the landing rows that commit the flush), so
// that a writer killed among them leaves work for the next one: inserts that may still
// land after it died, and raw rows whose flush never committed.
type halfWritten interface {
	WaitInserts(ctx context.Context) error
	Uncounted(ctx context.Context, windowMs int64) ([]schemas.Signal, error)
}

// recount rolls up, on start, the signals of the visitors owns accepts that the last
// run stored raw without their rollups, looking back one session timeout. On one node
// nothing else brings them again (a write-ahead log replay may, and then finds them
// counted); in a cluster JetStream does, but only after the ack wait, behind newer
// messages that would make them late. Counted now, they come before anything newer of
// their visitors, as their raw rows say, and their redelivery is a duplicate. Their raw
// rows are not written again. It returns how many it counted.
func recount(ctx context.Context, c *pipeConfig, agg *preagg.Aggregator, s store, owns func(string) bool) (int, error) {
	hw, ok := s.(halfWritten)
	if !ok {
		return 0, nil
	}
	sigs, err := hw.Uncounted(ctx, c.SessionTimeout.Milliseconds())
	if err != nil || len(sigs) == 0 {
		return 0, err
	}
	w := &skipStored{w: s, stored: make(map[sink.Key]bool, len(sigs))}
	kept := sigs[:0]
	for i := range sigs {
		k := sink.KeyOf(&sigs[i])
		if owns(k.AnonymousID) && !w.stored[k] { // a row stored twice is counted once
			w.stored[k] = true
			kept = append(kept, sigs[i])
		}
	}
	flush := agg.FlushTo(w)
	if err := flushEach(ctx, flush, kept, c.BatchSize); err != nil {
		return 0, fmt.Errorf("count %d signals stored without their rollups: %w", len(kept), err)
	}
	return len(kept), nil
}

// logDone is the buffer's Config.Done for log: it tells the log which of its segments'
// signals were delivered. A batch's tags come in runs, one per segment.
func logDone(log *wal.Log) func(tags []uint32) {
	if log == nil {
		return nil
	}
	return func(tags []uint32) {
		for i := 0; i < len(tags); {
			j := i + 1
			for j < len(tags) && tags[j] == tags[i] {
				j++
			}
			log.Done(tags[i], j-i)
			i = j
		}
	}
}

// errLogFull is what a signal refused for a full write-ahead log is told.
var errLogFull = fmt.Errorf("%w: the write-ahead log is at --wal-bytes", buffer.ErrFull)

// durable is the collector's intake with --durability disk: a request's signals are
// held in the log (wal.Hold), pushed into the buffer tagged with the segment the hold is
// on, and written to the log; Append
// returns once those the buffer took are synced to the log, so a 202 means on disk.
// The buffer may flush a signal before its record is synced; a crash then leaves it
// stored and unacknowledged, which a client's resend makes a duplicate the sessionizer
// counts once.
type durable struct {
	buf      *buffer.Buffer
	log      *wal.Log
	policy   buffer.Policy
	scratch  sync.Pool // of *records
	rejected *metrics.Counter
	dropped  *metrics.Counter
}

// records is one request's signals as log records, and where each ends.
type records struct {
	b    []byte
	ends []int
}

// newIntake returns the collector's intake: buf itself without a log, else buf behind
// the log.
func newIntake(buf *buffer.Buffer, log *wal.Log, policy buffer.Policy, set *metrics.Set) collector.Intake {
	if log == nil {
		return buf
	}
	return &durable{
		buf:      buf,
		log:      log,
		policy:   policy,
		scratch:  sync.Pool{New: func() any { return new(records) }},
		rejected: set.NewCounter(`rung_signals_rejected_total{reason="log_full"}`),
		dropped:  set.NewCounter(`rung_signals_dropped_total{reason="log_full"}`),
	}
}

func (d *durable) Append(ctx context.Context, signals []*schemas.Signal, errs []error) {
	r := d.scratch.Get().(*records)
	defer d.scratch.Put(r)
	r.b, r.ends = r.b[:0], r.ends[:0]
	for _, s := range signals {
		at := len(r.b)
		r.b = stream.Append(wal.Begin(r.b), s)
		wal.Seal(r.b[at:])
		r.ends = append(r.ends, len(r.b))
	}
	size := len(r.b)
	seg, err := d.log.Hold(len(signals), size)
	if err != nil {
		switch {
		case errors.Is(err, wal.ErrFull) && d.policy == buffer.Drop:
			d.dropped.Add(len(signals))
			err = buffer.ErrDropped
		case errors.Is(err, wal.ErrFull):
			d.rejected.Add(len(signals))
			err = errLogFull
		case errors.Is(err, wal.ErrClosed):
			err = buffer.ErrClosed
		default:
			err = fmt.Errorf("%w: %v", buffer.ErrFull, err)
		}
		for i := range errs[:len(signals)] {
			errs[i] = err
		}
		return
	}
	d.buf.AppendTagged(signals, errs, seg)
	// Only what the buffer took is logged: a signal it refused (503) or dropped
	// (counted) must not come back at a replay.
	kept, from, held := 0, 0, 0
	for i, end := range r.ends {
		if errs[i] == nil {
			kept += copy(r.b[kept:], r.b[from:end])
			held++
		}
		from = end
	}
	d.log.Done(seg, len(signals)-held)
	if err := d.log.Append(ctx, r.b[:kept], size); err != nil {
		err = fmt.Errorf("%w: %v", buffer.ErrFull, err)
		for i := range errs[:len(signals)] {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
}

// flushEach hands signals to flush size at a time, in order, as the buffer's flushes
// would have: a start-up's catching up writes batches the sink takes as it takes any.
func flushEach(ctx context.Context, flush func(context.Context, []schemas.Signal) error, signals []schemas.Signal, size int) error {
	for i := 0; i < len(signals); i += size {
		if err := flush(ctx, signals[i:min(i+size, len(signals))]); err != nil {
			return err
		}
	}
	return nil
}
