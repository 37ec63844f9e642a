// Package wal owns rung's write-ahead log: an append-only log of records in segment
// files of bounded size under one directory. Each record is framed with its length and
// a CRC-32C, so a tail torn by a crash (or a flipped byte) is found by checksum when the
// log is opened, cut, counted and logged. Appenders that arrive while a sync is under
// way share the next one (group commit): Append returns once its records are written
// and fsynced, and one fsync answers every appender of its group. The wait is bounded:
// at most the sync under way, Config.Linger, and the appender's own sync.
//
// The log knows nothing of what its records mean. A caller marks what it has yet to
// deliver with Hold, which returns the current segment's number, and says with Done
// when it has; a segment file is deleted once it and every older segment are sealed,
// synced and have nothing held. Records of a Hold can only land in that segment or a
// later one, so the oldest-first rule never deletes a record that is still held.
//
// The whole log is bounded in bytes: Hold answers ErrFull when the records it reserves
// room for would not fit. On Open, the segments found are checked and kept aside for
// Replay; Forget deletes them once the caller has delivered what they hold.
//
// Concurrency: Hold, Append and Done are safe for concurrent use. The Log owns one
// goroutine, its syncer, started by Open and stopped by Close.
package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

var (
	// ErrFull: the log is at its byte bound; the caller applies its when-full policy.
	ErrFull = errors.New("write-ahead log full")
	// ErrClosed: the log is closed and takes nothing more.
	ErrClosed = errors.New("write-ahead log closed")
)

// Config bounds the log. The zero value of a field takes its default.
type Config struct {
	SegmentBytes int64         // a segment is sealed past this size; default 64 MiB
	MaxBytes     int64         // bound on all segments together; default 1 GiB
	Linger       time.Duration // a sync waits this long for more appenders; default 0
}

func (c *Config) defaults() {
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = 64 << 20
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	c.MaxBytes = max(c.MaxBytes, c.SegmentBytes)
}

// Log is a write-ahead log in one directory. Create it with Open, stop it with Close.
type Log struct {
	dir string
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	wake     *sync.Cond // the syncer waits on it for writes or Close
	segs     []*segment // live segments, oldest first; the last is the one appended to
	size     int64      // bytes of the live segments, written or not
	reserved int64      // bytes held by Hold and not yet appended
	pbuf     []byte     // bytes appended and not yet handed to the syncer
	pend     []write    // where pbuf goes, in order
	spare    []byte     // the syncer's last pbuf, for reuse
	group    *group     // the appenders waiting on the next sync
	failed   error      // a write or sync failed: nothing more is taken
	closed   bool
	stopped  chan struct{} // closed when the syncer has exited
	old      []string      // segment files found at Open, for Replay

	syncs      *metrics.Counter
	syncBytes  *metrics.Counter
	syncErrors *metrics.Counter
	syncTime   *metrics.PrometheusHistogram
	cuts       *metrics.Counter
	cutBytes   *metrics.Counter
	replayed   *metrics.Counter
	deleted    *metrics.Counter
}

// segment is one file of the log. Its file is created by the syncer on its first write.
type segment struct {
	id      uint32
	size    int64 // bytes appended, header included (0 until the first records)
	synced  int64 // bytes written and fsynced
	held    int64 // records of Holds on this segment not yet Done
	sealed  bool  // nothing more is appended; closed once synced
	f       *os.File
	created bool
}

// write is a run of pbuf bound for one segment.
type write struct {
	seg      *segment
	from, to int
}

// group is one sync: its appenders wait for done, then read err.
type group struct {
	done chan struct{}
	err  error
}

// Open opens (creating it if needed) the log in dir. It checks every segment found
// there, cuts what follows the first bad record of each (a torn or corrupt tail),
// counting and logging it, and keeps the segments for Replay. New records go to new
// segments.
func Open(dir string, cfg Config, set *metrics.Set, log *slog.Logger) (*Log, error) {
	cfg.defaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create the write-ahead log directory: %w", err)
	}
	l := &Log{
		dir:     dir,
		cfg:     cfg,
		log:     log,
		group:   &group{done: make(chan struct{})},
		stopped: make(chan struct{}),

		syncs:      set.NewCounter(`rung_wal_syncs_total`),
		syncBytes:  set.NewCounter(`rung_wal_synced_bytes_total`),
		syncErrors: set.NewCounter(`rung_wal_sync_errors_total`),
		syncTime: set.NewPrometheusHistogramExt(`rung_wal_sync_seconds`,
			[]float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}),
		cuts:     set.NewCounter(`rung_wal_cut_total`),
		cutBytes: set.NewCounter(`rung_wal_cut_bytes_total`),
		replayed: set.NewCounter(`rung_wal_replayed_records_total`),
		deleted:  set.NewCounter(`rung_wal_segments_deleted_total`),
	}
	l.wake = sync.NewCond(&l.mu)
	set.NewGauge(`rung_wal_bytes`, func() float64 { l.mu.Lock(); defer l.mu.Unlock(); return float64(l.size) })
	set.NewGauge(`rung_wal_segments`, func() float64 { l.mu.Lock(); defer l.mu.Unlock(); return float64(len(l.segs)) })
	set.NewGauge(`rung_wal_max_bytes`, func() float64 { return float64(cfg.MaxBytes) })

	ids, err := segmentIDs(dir)
	if err != nil {
		return nil, err
	}
	next := uint32(1)
	for _, id := range ids {
		path := filepath.Join(dir, segmentName(id))
		next = id + 1
		empty, err := l.check(path)
		if err != nil {
			return nil, err
		}
		if !empty {
			l.old = append(l.old, path)
		}
	}
	l.segs = []*segment{{id: next}}
	go l.syncer()
	return l, nil
}

func segmentName(id uint32) string { return fmt.Sprintf("%010d.wal", id) }

// segmentIDs lists the segment files in dir, oldest first.
func segmentIDs(dir string) ([]uint32, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list the write-ahead log: %w", err)
	}
	var ids []uint32
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".wal")
		if !ok || e.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("write-ahead log file %s: not a segment name", e.Name())
		}
		ids = append(ids, uint32(id))
	}
	slices.Sort(ids)
	return ids, nil
}

// check reads a segment and truncates it after its last good record; a segment left
// without its header (a crash right after creating it) is deleted, and empty says so.
func (l *Log) check(path string) (empty bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("read write-ahead log segment: %w", err)
	}
	good, records, why := scan(b)
	if why == nil {
		return false, nil
	}
	l.cuts.Inc()
	l.cutBytes.Add(len(b) - good)
	l.log.Warn("write-ahead log: cut a torn or corrupt tail", "segment", path, "offset", good,
		"bytes_cut", len(b)-good, "records_kept", records, "why", why.Error())
	if good == 0 {
		if err := os.Remove(path); err != nil {
			return false, fmt.Errorf("delete the headless segment %s: %w", path, err)
		}
		return true, syncPath(filepath.Dir(path))
	}
	if err := os.Truncate(path, int64(good)); err != nil {
		return false, fmt.Errorf("cut the tail of %s: %w", path, err)
	}
	return false, syncPath(path)
}

// scan walks a segment's records and returns the length of its good prefix, the number
// of records in it, and why the rest is bad (nil when nothing is).
func scan(b []byte) (good, records int, why error) {
	if len(b) < len(segmentMagic) || string(b[:len(segmentMagic)]) != segmentMagic {
		return 0, 0, fmt.Errorf("%w: no segment header", ErrTorn)
	}
	off := len(segmentMagic)
	for off < len(b) {
		_, n, err := Decode(b[off:])
		if err != nil {
			return off, records, err
		}
		off += n
		records++
	}
	return off, records, nil
}

// Replay calls fn with the payload of every record of the segments found at Open, in
// the order they were appended. The payload is valid only during the call. An error
// from fn stops the replay and is returned.
func (l *Log) Replay(fn func(payload []byte) error) error {
	for _, path := range l.old {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read write-ahead log segment: %w", err)
		}
		good, _, _ := scan(b) // cut at Open: everything left is good
		for off := len(segmentMagic); off < good; {
			p, n, _ := Decode(b[off:good])
			if err := fn(p); err != nil {
				return err
			}
			l.replayed.Inc()
			off += n
		}
	}
	return nil
}

// Forget deletes the segments found at Open: call it once what Replay gave is delivered.
func (l *Log) Forget() error {
	for _, path := range l.old {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("delete a replayed write-ahead log segment: %w", err)
		}
		l.deleted.Inc()
	}
	l.old = nil
	return syncPath(l.dir)
}

// Hold reserves room for records of bytes bytes carrying n things the caller has yet to
// deliver, and returns the segment to report them Done against. It returns ErrFull when
// they would not fit within MaxBytes. The reservation is given back by Append.
func (l *Log) Hold(n int, bytes int) (uint32, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if l.failed != nil {
		return 0, l.failed
	}
	if l.size+l.reserved+int64(bytes) > l.cfg.MaxBytes {
		return 0, ErrFull
	}
	l.reserved += int64(bytes)
	cur := l.segs[len(l.segs)-1]
	cur.held += int64(n)
	return cur.id, nil
}

// Done says that n things held on segment seg have been delivered (or given up on).
func (l *Log) Done(seg uint32, n int) {
	if n == 0 {
		return
	}
	l.mu.Lock()
	if i := int(seg - l.segs[0].id); i >= 0 && i < len(l.segs) {
		l.segs[i].held -= int64(n)
	}
	gone := l.collect()
	l.mu.Unlock()
	l.remove(gone)
}

// Append writes recs (records made with Begin and Seal, one after another) to the log
// and returns once they are synced, giving back held bytes of a Hold. An empty recs
// only gives the reservation back. Appends never split recs across segments.
func (l *Log) Append(ctx context.Context, recs []byte, held int) error {
	l.mu.Lock()
	l.reserved -= int64(held)
	if len(recs) == 0 {
		l.mu.Unlock()
		return nil
	}
	if l.failed != nil || l.closed {
		err := l.failed
		if err == nil {
			err = ErrClosed
		}
		l.mu.Unlock()
		return err
	}
	cur := l.segs[len(l.segs)-1]
	if cur.size > 0 && cur.size+int64(len(recs)) > l.cfg.SegmentBytes {
		cur = l.rotate()
	}
	from := len(l.pbuf)
	if cur.size == 0 {
		l.pbuf = append(l.pbuf, segmentMagic...)
	}
	l.pbuf = append(l.pbuf, recs...)
	l.addWrite(cur, from, len(l.pbuf))
	l.size += int64(len(l.pbuf) - from)
	cur.size += int64(len(l.pbuf) - from)
	g := l.group
	l.wake.Signal()
	l.mu.Unlock()
	select {
	case <-g.done:
		return g.err
	case <-ctx.Done():
		return fmt.Errorf("wait for the write-ahead log sync: %w", ctx.Err())
	}
}

// addWrite records that pbuf[from:to] goes to seg. Lock should be held.
func (l *Log) addWrite(seg *segment, from, to int) {
	if n := len(l.pend); n > 0 && l.pend[n-1].seg == seg {
		l.pend[n-1].to = to
		return
	}
	l.pend = append(l.pend, write{seg: seg, from: from, to: to})
}

// rotate seals the current segment and starts the next, whose header is written with
// its first records. Lock should be held.
func (l *Log) rotate() *segment {
	cur := l.segs[len(l.segs)-1]
	cur.sealed = true
	next := &segment{id: cur.id + 1}
	l.segs = append(l.segs, next)
	return next
}

// collect takes the segments that may be deleted off the front of the list and
// returns them: sealed, synced and with nothing held, as is every older segment. A
// current segment past a sixteenth of SegmentBytes with nothing held and everything
// synced is sealed first, so an idle log leaves little behind to replay, and a light
// load does not make a file per flush. Lock should be held.
func (l *Log) collect() []*segment {
	if cur := l.segs[len(l.segs)-1]; len(l.segs) == 1 && cur.held == 0 && cur.size >= l.cfg.SegmentBytes/16 &&
		cur.synced == cur.size && len(l.pend) == 0 && !l.closed && l.failed == nil {
		l.rotate()
	}
	var gone []*segment
	for len(l.segs) > 1 {
		s := l.segs[0]
		if !s.sealed || s.held != 0 || s.synced != s.size {
			break
		}
		gone = append(gone, s)
		l.size -= s.size
		l.segs[0] = nil
		l.segs = l.segs[1:]
	}
	return gone
}

// remove deletes the files of segments collect took. A segment's file is closed by the
// syncer once it is sealed and synced, which collect waited for.
func (l *Log) remove(gone []*segment) {
	for _, s := range gone {
		if !s.created {
			continue
		}
		if err := os.Remove(filepath.Join(l.dir, segmentName(s.id))); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("write-ahead log: delete a delivered segment", "err", err)
			continue
		}
		l.deleted.Inc()
	}
}

// syncer writes and syncs what Append queued, one group at a time, until Close.
func (l *Log) syncer() {
	defer close(l.stopped)
	var (
		pend    []write
		touched []*segment
	)
	for {
		l.mu.Lock()
		for len(l.pend) == 0 && !l.closed {
			l.wake.Wait()
		}
		if len(l.pend) == 0 {
			l.mu.Unlock()
			return
		}
		if l.cfg.Linger > 0 && !l.closed {
			// A bounded wait: appenders arriving meanwhile join this group.
			l.mu.Unlock()
			time.Sleep(l.cfg.Linger)
			l.mu.Lock()
		}
		buf, g := l.pbuf, l.group
		pend = append(pend[:0], l.pend...)
		l.pbuf, l.pend, l.group = l.spare[:0], l.pend[:0], &group{done: make(chan struct{})}
		l.mu.Unlock()

		start := time.Now()
		touched = touched[:0]
		err := l.writeOut(buf, pend, &touched)
		l.syncs.Inc()
		l.syncTime.UpdateDuration(start)
		l.syncBytes.Add(len(buf))

		l.mu.Lock()
		if err != nil {
			l.syncErrors.Inc()
			// A failed fsync leaves it unknown what the file holds: take nothing more.
			l.failed = fmt.Errorf("write-ahead log: %w", err)
			l.log.Error("write-ahead log failed; refusing signals until restart", "err", err)
		} else {
			for _, w := range pend {
				w.seg.synced += int64(w.to - w.from)
			}
		}
		for _, s := range touched {
			if s.sealed && s.synced == s.size && s.f != nil {
				s.f.Close()
				s.f = nil
			}
		}
		l.spare = buf
		gone := l.collect()
		l.mu.Unlock()
		l.remove(gone)
		g.err = err
		close(g.done)
	}
}

// writeOut writes each run to its segment's file, creating files as needed, then syncs
// the files and, when one was created, the directory. It touches segments' files only:
// the list and the counts are the caller's, under the lock.
func (l *Log) writeOut(buf []byte, pend []write, touched *[]*segment) error {
	created := false
	for _, w := range pend {
		s := w.seg
		if s.f == nil {
			f, err := os.OpenFile(filepath.Join(l.dir, segmentName(s.id)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return fmt.Errorf("create segment %d: %w", s.id, err)
			}
			s.f, created = f, true
			l.mu.Lock()
			s.created = true
			l.mu.Unlock()
		}
		if _, err := s.f.Write(buf[w.from:w.to]); err != nil {
			return fmt.Errorf("write segment %d: %w", s.id, err)
		}
		if n := len(*touched); n == 0 || (*touched)[n-1] != s {
			*touched = append(*touched, s)
		}
	}
	for _, s := range *touched {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("sync segment %d: %w", s.id, err)
		}
	}
	if created {
		return syncPath(l.dir)
	}
	return nil
}

// syncPath fsyncs a file or directory by name: after a truncate, a create or a delete.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s to sync it: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// Close syncs what was appended, stops the syncer and closes the files. Segments with
// records still held stay on disk for the next Open to replay. Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	l.closed = true
	l.wake.Signal()
	l.mu.Unlock()
	<-l.stopped
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, s := range l.segs {
		if s.f != nil {
			errs = append(errs, s.f.Close())
			s.f = nil
		}
	}
	return errors.Join(errs...)
}
