package preagg

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unique"
	"unsafe"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cespare/xxhash/v2"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Writer stores a flush: the raw signals and the rollup rows. sink.Sink is one.
type Writer interface {
	Write(ctx context.Context, b *sink.Batch) error
}

// Aggregator is the sessionizer. Create it with New, call Restore once before the first
// flush, and hand FlushTo(sink) to the buffer. It starts no goroutines: it runs inside
// the buffer's flushers, which may call it concurrently.
type Aggregator struct {
	cfg      Config
	timeout  int64 // ms
	window   int64 // ms, Config.LateWindow
	goals    map[string]struct{}
	perShard int
	shards   []shard
	lanes    []lane
	txID     atomic.Uint64
	txs      sync.Pool // *flushTx

	open      atomic.Int64
	started   *metrics.Counter
	closed    *metrics.Counter
	evicted   *metrics.Counter
	dups      *metrics.Counter
	late      *metrics.Counter
	overflow  *metrics.Counter
	aborted   *metrics.Counter
	restored  *metrics.Counter
	unresumed *metrics.Counter
	skipped   *metrics.Counter // open sessions Restore left out for MaxOpenSessions
}

// lane is one lock's worth of shards, shard % lanes, with the rollup cell its flushes
// write. The buffer gives shard i to flusher i % flushers, so with as many lanes as
// flushers each flusher has a lane to itself.
type lane struct {
	mu   sync.Mutex
	cell *cell    // nil until first needed, and after a retirement
	_    [48]byte // keep neighbouring lanes' locks off one cache line
}

// shard is one partition of the visitors, kept in a list by last activity: the front is
// the least recently active. Its lane's lock guards it.
type shard struct {
	visitors    map[uint64]*visitor // by visitorHash; collisions chain through visitor.same
	front, back *visitor
	n           int
	watermark   int64 // newest event time this shard has placed, Unix ms
}

// interned is an interned string: comparing and hashing one costs a pointer.
type interned = unique.Handle[string]

// visitor is one (site, anonymous_id) with an open session. Its strings are its own
// (interned, held inside it, or cloned), never the request body's.
type visitor struct {
	site        interned
	anon        string // in inline when it fits
	hash        uint64
	same        *visitor // the next visitor of the shard with the same hash
	inline      [inlineAnon]byte
	prev, next  *visitor
	s           session
	ids         []uint64 // xxhash of the session's event_ids, in arrival order
	idsInline   [4]uint64
	idx         map[uint64]struct{}
	exps        []expo // first exposures seen while in memory
	tx          uint64 // the transaction that last touched it
	undo        int32  // its entry in that transaction's undo log
	lane        int32
	idsOverflow bool
}

// session is the rollup-relevant state of a visitor's current session, plus what the
// transaction in progress has to write for it.
type session struct {
	start, last int64
	land        landing
	converted   bool
	conv        int64 // latest conversion in the transaction in progress, 0 if none
}

// landing is the session's first pageview; ms == 0 while it has none.
type landing struct {
	ms                  int64
	path, src, med, cmp interned
}

// before reports whether the pageview sig at ms lands the session ahead of l: earlier,
// or at the same millisecond with the smaller (path, utm_source, utm_medium,
// utm_campaign).
func (l *landing) before(ms int64, sig *schemas.Signal) bool {
	switch {
	case l.ms == 0:
		return true
	case ms != l.ms:
		return ms < l.ms
	case sig.Path != stringOf(l.path):
		return sig.Path < stringOf(l.path)
	case sig.UTMSource != stringOf(l.src):
		return sig.UTMSource < stringOf(l.src)
	case sig.UTMMedium != stringOf(l.med):
		return sig.UTMMedium < stringOf(l.med)
	}
	return sig.UTMCampaign < stringOf(l.cmp)
}

type expo struct {
	exp, variant string
	ms           int64
	pending      bool // to be written by the transaction in progress
}

// idxAt is the session size from which event_ids are also kept in a map.
const idxAt = 32

// inlineAnon is the longest anonymous_id a visitor holds inside itself (t.js makes
// ids of up to 43 bytes): every signal's lookup compares it, and a separate copy would
// be one more cache miss per signal, and one more object per session.
const inlineAnon = 48

// newVisitor makes the visitor (site, anon) of hash h, owning its strings.
func newVisitor(site, anon string, h uint64) *visitor {
	v := &visitor{site: intern(site), hash: h}
	if len(anon) <= inlineAnon {
		n := copy(v.inline[:], anon)
		v.anon = unsafe.String(&v.inline[0], n) // never written again
	} else {
		v.anon = strings.Clone(anon)
	}
	v.ids = v.idsInline[:0]
	return v
}

// New makes an Aggregator and registers its metrics in set.
func New(cfg Config, set *metrics.Set) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	cfg.defaults()
	a := &Aggregator{
		cfg:       cfg,
		timeout:   cfg.SessionTimeout.Milliseconds(),
		window:    cfg.LateWindow.Milliseconds(),
		goals:     make(map[string]struct{}, len(cfg.Goals)),
		perShard:  max(1, cfg.MaxOpenSessions/cfg.Shards),
		shards:    make([]shard, cfg.Shards),
		lanes:     make([]lane, cfg.Lanes),
		started:   set.NewCounter(`rung_preagg_sessions_started_total`),
		closed:    set.NewCounter(`rung_preagg_sessions_closed_total`),
		evicted:   set.NewCounter(`rung_preagg_sessions_evicted_total`),
		dups:      set.NewCounter(`rung_preagg_duplicates_total`),
		late:      set.NewCounter(`rung_preagg_late_signals_total`),
		overflow:  set.NewCounter(`rung_preagg_event_ids_overflow_total`),
		aborted:   set.NewCounter(`rung_preagg_flushes_rolled_back_total`),
		restored:  set.NewCounter(`rung_preagg_sessions_restored_total`),
		unresumed: set.NewCounter(`rung_preagg_sessions_not_restored_total`),
		skipped:   set.NewCounter(`rung_preagg_sessions_restore_skipped_total`),
	}
	set.NewGauge(`rung_preagg_sessions_open`, func() float64 { return float64(a.open.Load()) })
	set.NewGauge(`rung_preagg_sessions_max`, func() float64 { return float64(a.perShard * cfg.Shards) })
	for _, goal := range cfg.Goals {
		a.goals[goal] = struct{}{}
	}
	for i := range a.shards {
		a.shards[i].visitors = make(map[uint64]*visitor)
	}
	a.txs.New = func() any {
		return &flushTx{a: a, mark: make([]bool, cfg.Shards), laneMark: make([]bool, cfg.Lanes),
			delta: make(map[laneKey]*[2]int64)}
	}
	return a, nil
}

// Rules returns the rules the Aggregator runs with, for the recomputation.
func (a *Aggregator) Rules() sink.Rules { return a.cfg.Rules() }

// Open returns the number of visitors with an open session in memory.
func (a *Aggregator) Open() int { return int(a.open.Load()) }

// FlushTo returns the buffer's flush function (a buffer.FlushFunc, spelled out so that
// preagg need not import the buffer): it rolls each batch into the sessions and writes
// the signals with the rollup rows to w, as one transaction (see the package comment).
// The batch's event times may be raised (late signals, see the package comment); the
// order of the slice is left as it is.
func (a *Aggregator) FlushTo(w Writer) func(ctx context.Context, signals []schemas.Signal) error {
	return func(ctx context.Context, signals []schemas.Signal) error {
		tx := a.begin(signals)
		err := w.Write(ctx, &tx.batch)
		if err != nil {
			a.aborted.Inc()
			tx.abort()
		} else {
			tx.commit()
		}
		tx.release()
		return err
	}
}

// flushTx is one flush in progress. It holds the locks of the shards its signals touch
// from begin to commit or abort.
type flushTx struct {
	a        *Aggregator
	id       uint64
	mark     []bool  // shards touched
	touched  []int   // shards touched, ascending
	wm       []int64 // their watermarks before the transaction
	laneMark []bool
	locked   []int    // lanes locked, ascending
	shard    []int32  // per signal, -1 for bots
	hash     []uint64 // per signal, the visitor's hash
	order    []seqKey // the signals to roll, in arrival order
	undo     []undo
	delta    map[laneKey]*[2]int64 // sessions, converted
	batch    sink.Batch
	landRows []landRow // parallel to batch.Landing
	spare    []*[2]int64
}

// seqKey is a signal of the batch, i, by its sequence number.
type seqKey struct {
	seq uint64
	i   int32
}

// landKey is a sink.LandingKey of interned strings: cheap to hash, the key of the
// cells' counts.
type landKey struct {
	hour                      int64
	site, path, src, med, cmp interned
}

func (k landKey) sink() sink.LandingKey {
	return sink.LandingKey{Site: stringOf(k.site), HourMs: k.hour, LandingPath: stringOf(k.path), UTMSource: stringOf(k.src),
		UTMMedium: stringOf(k.med), UTMCampaign: stringOf(k.cmp)}
}

// laneKey attributes a landing count to the cell of the lane whose visitor moved it.
type laneKey struct {
	lane int32
	landKey
}

// landRow is a landing row of the batch: its key and the cell it belongs to.
type landRow struct {
	k landKey
	c *cell
}

// undo is what abort needs to put one visitor back as it was before the transaction.
type undo struct {
	v       *visitor
	created bool
	shard   int32 // of a created visitor
	s       session
	idsLen  int
	oldIDs  []uint64 // set when the session rolled over in this transaction
	oldIdx  map[uint64]struct{}
	reset   bool
	exps    []expo // a copy, set when exposures changed in this transaction
	expsSet bool
	ovf     bool
}

// begin rolls signals into the sessions. The caller must commit or abort, then release.
func (a *Aggregator) begin(signals []schemas.Signal) *flushTx {
	tx := a.txs.Get().(*flushTx)
	tx.id = a.txID.Add(1)
	tx.batch.Signals = signals
	tx.shard, tx.hash = tx.shard[:0], tx.hash[:0]
	for i := range signals {
		sig := &signals[i]
		sig.EventAt = sig.At()
		if sig.Bot || sig.Type == schemas.TypeUnknown {
			tx.shard, tx.hash = append(tx.shard, -1), append(tx.hash, 0)
			continue
		}
		h := xxhash.Sum64String(sig.AnonymousID)
		s := int(h % uint64(len(a.shards))) // buffer.ShardOf, from the hash at hand
		tx.shard, tx.hash = append(tx.shard, int32(s)), append(tx.hash, visitorHash(h, sig.Site))
		tx.mark[s] = true
	}
	for i, m := range tx.mark {
		if m {
			tx.touched = append(tx.touched, i)
			tx.mark[i] = false
			tx.laneMark[i%len(a.lanes)] = true
		}
	}
	for i, m := range tx.laneMark {
		if m {
			tx.locked = append(tx.locked, i)
			tx.laneMark[i] = false
		}
	}
	for _, i := range tx.locked { // ascending: no two transactions deadlock
		a.lanes[i].mu.Lock()
	}
	for _, i := range tx.touched {
		sh := &a.shards[i]
		tx.wm = append(tx.wm, sh.watermark)
		a.sweep(sh, tx.id)
	}
	// Signals are rolled in arrival order, their sequence: it does not depend on how the
	// buffer cut the flushes, so neither does where the late rule places a signal.
	// The keys are copied out so the sort reads them in sequence, not a signal each.
	tx.order = tx.order[:0]
	sorted := true
	for i, s := range tx.shard {
		if s >= 0 {
			k := seqKey{signals[i].Seq, int32(i)}
			sorted = sorted && (len(tx.order) == 0 || tx.order[len(tx.order)-1].seq <= k.seq)
			tx.order = append(tx.order, k)
		}
	}
	if !sorted {
		slices.SortFunc(tx.order, func(x, y seqKey) int {
			if c := cmp.Compare(x.seq, y.seq); c != 0 {
				return c
			}
			return cmp.Compare(x.i, y.i)
		})
	}
	tx.batch.SessionMs = slices.Grow(tx.batch.SessionMs[:0], len(signals))[:len(signals)]
	clear(tx.batch.SessionMs)
	for _, k := range tx.order {
		tx.batch.SessionMs[k.i] = tx.apply(int(tx.shard[k.i]), tx.hash[k.i], &signals[k.i])
	}
	tx.rows()
	return tx
}

// sweep lets closed sessions leave memory: those a timeout and the late window behind
// the newest signal the shard has placed. Each shard goes by its own time, so a flusher
// running behind others never closes sessions early. Visitors the transaction tx touched
// stay. Lock should be held.
func (a *Aggregator) sweep(sh *shard, tx uint64) {
	for v := sh.front; v != nil && v.tx != tx && v.s.last+a.timeout+a.window <= sh.watermark; v = sh.front {
		sh.remove(v)
		a.open.Add(-1)
		a.closed.Inc()
	}
}

// visitorHash keys a visitor in its shard: the hash of the anonymous_id (the one that
// chose the shard) mixed with the site's.
func visitorHash(anon uint64, site string) uint64 {
	return anon ^ (xxhash.Sum64String(site) * 0x9e3779b97f4a7c15)
}

// get returns the visitor (site, anon) of hash h, or nil.
func (sh *shard) get(h uint64, site, anon string) *visitor {
	for v := sh.visitors[h]; v != nil; v = v.same {
		if v.anon == anon && stringOf(v.site) == site {
			return v
		}
	}
	return nil
}

// apply places one signal in its visitor's timeline (the late rule of the package
// comment: its event time, raw row included, may be raised), rolls it into their session
// and returns the session's start, 0 when the signal is a duplicate; s is the visitor's
// shard, h its hash.
func (tx *flushTx) apply(s int, h uint64, sig *schemas.Signal) int64 {
	a := tx.a
	sh := &a.shards[s]
	v := sh.get(h, sig.Site, sig.AnonymousID)
	if v == nil {
		// Not in memory: any closed session of theirs ended a timeout and the late window
		// before the watermark, so from here on the signal cannot join it.
		if floor := sh.watermark - a.window; sig.EventAt < floor {
			sig.EventAt = floor
			a.late.Inc()
		}
		sh.watermark = max(sh.watermark, sig.EventAt) // before create, which may sweep
		v = tx.create(sh, s, h, sig)
		tx.start(v, sig.EventAt)
	} else {
		tx.touch(v)
		if sig.EventAt <= v.s.last {
			sig.EventAt = v.s.last + 1 // strictly after what the visitor's session has seen
			a.late.Inc()
		}
		sh.watermark = max(sh.watermark, sig.EventAt)
		if sig.EventAt-v.s.last >= a.timeout {
			tx.rollover(v)
			tx.start(v, sig.EventAt)
		} else if v.seen(sig.EventID) {
			a.dups.Inc()
			return 0
		}
	}
	a.remember(v, sig.EventID)
	v.s.last = sig.EventAt
	sh.moveToBack(v)
	switch sig.Type {
	case schemas.TypePageview:
		if v.s.land.before(sig.EventAt, sig) {
			conv := int64(0)
			if v.s.converted {
				conv = 1
			}
			tx.add(tx.key(v), -1, -conv)
			v.s.land = landing{ms: sig.EventAt, path: intern(sig.Path), src: intern(sig.UTMSource), med: intern(sig.UTMMedium),
				cmp: intern(sig.UTMCampaign)}
			tx.add(tx.key(v), 1, conv)
		}
	case schemas.TypeEvent:
		if _, ok := a.goals[sig.Name]; ok {
			v.s.conv = max(v.s.conv, sig.EventAt)
			if !v.s.converted {
				v.s.converted = true
				tx.add(tx.key(v), 0, 1)
			}
		}
	case schemas.TypeExposure:
		if sig.Experiment != "" {
			tx.expose(v, sig)
		}
	}
	return v.s.start
}

// create adds a visitor, evicting the least recently active one when the shard is full.
func (tx *flushTx) create(sh *shard, s int, h uint64, sig *schemas.Signal) *visitor {
	a := tx.a
	if sh.n >= a.perShard {
		a.sweep(sh, tx.id) // closing beats evicting
	}
	if sh.n >= a.perShard {
		if f := sh.front; f != nil && f.tx != tx.id {
			sh.remove(f)
			a.open.Add(-1)
			a.evicted.Inc()
		}
	}
	v := newVisitor(sig.Site, sig.AnonymousID, h)
	v.lane, v.tx, v.undo = int32(s%len(a.lanes)), tx.id, int32(len(tx.undo))
	tx.undo = append(tx.undo, undo{v: v, created: true, shard: int32(s)})
	sh.add(v)
	a.open.Add(1)
	return v
}

// touch records v's state before the transaction changes it, once per transaction.
func (tx *flushTx) touch(v *visitor) {
	if v.tx == tx.id {
		return
	}
	v.tx, v.undo = tx.id, int32(len(tx.undo))
	tx.undo = append(tx.undo, undo{v: v, s: v.s, idsLen: len(v.ids), ovf: v.idsOverflow})
}

// start opens a new session for v at ms and counts it under "no landing page yet".
func (tx *flushTx) start(v *visitor, ms int64) {
	v.s = session{start: ms, last: ms, conv: v.s.conv}
	tx.add(tx.key(v), 1, 0)
	tx.a.started.Inc()
}

// rollover closes v's session inside the transaction: its row is written now if it
// changed, and its event_ids are forgotten (kept aside for abort).
func (tx *flushTx) rollover(v *visitor) {
	u := &tx.undo[v.undo]
	if !u.reset {
		// The old ids are kept aside for abort; the inline array may hold them.
		u.reset, u.oldIDs, u.oldIdx = true, append([]uint64(nil), v.ids...), v.idx
		v.ids, v.idx = v.idsInline[:0], nil
	} else {
		v.ids, v.idx = v.ids[:0], nil
	}
	v.idsOverflow = false
}

func (v *visitor) seen(id string) bool {
	if id == "" {
		return false
	}
	h := xxhash.Sum64String(id)
	if v.idx != nil {
		_, ok := v.idx[h]
		return ok
	}
	for _, x := range v.ids {
		if x == h {
			return true
		}
	}
	return false
}

func (a *Aggregator) remember(v *visitor, id string) {
	if id == "" {
		return
	}
	if len(v.ids) >= a.cfg.MaxEventIDs {
		if !v.idsOverflow {
			v.idsOverflow = true
			a.overflow.Inc()
		}
		return
	}
	h := xxhash.Sum64String(id)
	v.ids = append(v.ids, h)
	if v.idx != nil {
		v.idx[h] = struct{}{}
	} else if len(v.ids) > idxAt {
		v.idx = make(map[uint64]struct{}, 2*len(v.ids))
		for _, x := range v.ids {
			v.idx[x] = struct{}{}
		}
	}
}

// expose records an exposure when it is the visitor's first to that experiment as far
// as memory knows: the smallest (time, variant).
func (tx *flushTx) expose(v *visitor, sig *schemas.Signal) {
	for i := range v.exps {
		e := &v.exps[i]
		if e.exp != sig.Experiment {
			continue
		}
		if sig.EventAt < e.ms || (sig.EventAt == e.ms && sig.Variant < e.variant) {
			tx.saveExps(v)
			e.ms, e.variant, e.pending = sig.EventAt, internString(sig.Variant), true
		}
		return
	}
	tx.saveExps(v)
	v.exps = append(v.exps, expo{exp: internString(sig.Experiment), variant: internString(sig.Variant), ms: sig.EventAt, pending: true})
}

func (tx *flushTx) saveExps(v *visitor) {
	u := &tx.undo[v.undo]
	if !u.expsSet && !u.created {
		u.expsSet, u.exps = true, append([]expo(nil), v.exps...)
	}
}

func (tx *flushTx) key(v *visitor) laneKey {
	l := &v.s.land
	return laneKey{v.lane, landKey{hour: sink.HourMs(v.s.start), site: v.site, path: l.path, src: l.src, med: l.med, cmp: l.cmp}}
}

func (tx *flushTx) add(k laneKey, sessions, converted int64) {
	if sessions == 0 && converted == 0 {
		return
	}
	d := tx.delta[k]
	if d == nil {
		if n := len(tx.spare); n > 0 {
			d, tx.spare = tx.spare[n-1], tx.spare[:n-1]
		} else {
			d = new([2]int64)
		}
		tx.delta[k] = d
	}
	d[0] += sessions
	d[1] += converted
}

// rows fills the batch's rollup rows from what the transaction changed.
func (tx *flushTx) rows() {
	for i := range tx.undo {
		v := tx.undo[i].v
		if v.s.conv > 0 {
			tx.batch.Conversions = append(tx.batch.Conversions, sink.Conversion{Site: stringOf(v.site), AnonymousID: v.anon, LastMs: v.s.conv})
			v.s.conv = 0
		}
		for j := range v.exps {
			if e := &v.exps[j]; e.pending {
				e.pending = false
				tx.batch.Exposures = append(tx.batch.Exposures, sink.Exposure{Site: stringOf(v.site), Experiment: e.exp,
					AnonymousID: v.anon, FirstMs: e.ms, Variant: e.variant})
			}
		}
	}
	for k, d := range tx.delta {
		if d[0] == 0 && d[1] == 0 {
			continue
		}
		c := tx.a.lanes[k.lane].active(tx.a.cfg.CellKeys)
		cur := c.value(k.landKey)
		tx.batch.Landing = append(tx.batch.Landing, sink.LandingCell{LandingKey: k.landKey.sink(), Cell: c.id,
			Sessions: cur[0] + d[0], Converted: cur[1] + d[1], Version: c.version + 1})
		tx.landRows = append(tx.landRows, landRow{k.landKey, c})
	}
	// Keys an aborted flush may have left at a version this cell skipped are written
	// back to their committed values.
	for _, i := range tx.locked {
		c := tx.a.lanes[i].cell
		if c == nil {
			continue
		}
		for k := range c.rewrite {
			if d := tx.delta[laneKey{int32(i), k}]; d == nil || (d[0] == 0 && d[1] == 0) {
				cur := c.value(k)
				tx.batch.Landing = append(tx.batch.Landing, sink.LandingCell{LandingKey: k.sink(), Cell: c.id,
					Sessions: cur[0], Converted: cur[1], Version: c.version + 1})
				tx.landRows = append(tx.landRows, landRow{k, c})
			}
		}
	}
}

// commit keeps the transaction's state and advances the cells it wrote.
func (tx *flushTx) commit() {
	a := tx.a
	for i := range tx.batch.Landing {
		l, r := &tx.batch.Landing[i], &tx.landRows[i]
		if p := r.c.counts[r.k]; p != nil {
			p[0], p[1] = l.Sessions, l.Converted
		} else {
			r.c.counts[r.k] = &[2]int64{l.Sessions, l.Converted}
		}
		r.c.wrote = true
	}
	for _, i := range tx.locked {
		ln := &a.lanes[i]
		if c := ln.cell; c != nil && c.wrote {
			c.version++
			c.wrote = false
			clear(c.rewrite)
			if len(c.counts) >= a.cfg.CellKeys {
				ln.cell = nil // retired: its rows stay final in the store
			}
		}
	}
}

// abort puts every visitor the transaction touched back as it was. The rows it handed
// the sink may have landed all the same (an error after the insert), so the cells skip
// the version they wrote and rewrite those keys at their next flush: whatever landed is
// superseded, and a batch delivered again counts once.
func (tx *flushTx) abort() {
	a := tx.a
	for j, i := range tx.touched {
		a.shards[i].watermark = tx.wm[j]
	}
	for _, r := range tx.landRows {
		if r.c.rewrite == nil {
			r.c.rewrite = make(map[landKey]struct{})
		}
		r.c.rewrite[r.k] = struct{}{}
		r.c.wrote = true
	}
	for _, i := range tx.locked {
		if c := a.lanes[i].cell; c != nil && c.wrote {
			c.version++
			c.wrote = false
		}
	}
	for i := len(tx.undo) - 1; i >= 0; i-- {
		u := &tx.undo[i]
		v := u.v
		if u.created {
			a.shards[u.shard].remove(v)
			a.open.Add(-1)
			continue
		}
		v.s = u.s
		v.idsOverflow = u.ovf
		if u.reset {
			v.ids, v.idx = u.oldIDs, u.oldIdx
		}
		if len(v.ids) > u.idsLen {
			if v.idx != nil {
				for _, h := range v.ids[u.idsLen:] {
					delete(v.idx, h)
				}
				if u.idsLen <= idxAt {
					v.idx = nil
				}
			}
			v.ids = v.ids[:u.idsLen]
		}
		if u.expsSet {
			v.exps = u.exps
		}
	}
}

// release unlocks the shards and returns the transaction to the pool.
func (tx *flushTx) release() {
	a := tx.a
	for _, i := range tx.locked {
		a.lanes[i].mu.Unlock()
	}
	tx.locked, tx.touched, tx.wm = tx.locked[:0], tx.touched[:0], tx.wm[:0]
	clear(tx.undo)
	tx.undo = tx.undo[:0]
	for k, d := range tx.delta {
		*d = [2]int64{}
		tx.spare = append(tx.spare, d)
		delete(tx.delta, k)
	}
	tx.batch.Signals = nil
	clear(tx.batch.Landing)
	clear(tx.batch.Exposures)
	clear(tx.batch.Conversions)
	tx.batch.Reset()
	clear(tx.landRows)
	tx.landRows = tx.landRows[:0]
	a.txs.Put(tx)
}

func (sh *shard) pushBack(v *visitor) {
	v.prev, v.next = sh.back, nil
	if sh.back != nil {
		sh.back.next = v
	} else {
		sh.front = v
	}
	sh.back = v
	sh.n++
}

func (sh *shard) unlink(v *visitor) {
	if v.prev != nil {
		v.prev.next = v.next
	} else {
		sh.front = v.next
	}
	if v.next != nil {
		v.next.prev = v.prev
	} else {
		sh.back = v.prev
	}
	v.prev, v.next = nil, nil
	sh.n--
}

func (sh *shard) moveToBack(v *visitor) {
	if sh.back == v {
		return
	}
	sh.unlink(v)
	sh.pushBack(v)
}

// add puts v in the shard, at the back of the activity list.
func (sh *shard) add(v *visitor) {
	v.same = sh.visitors[v.hash]
	sh.visitors[v.hash] = v
	sh.pushBack(v)
}

// remove takes v out of the shard; removing a visitor not in it does nothing.
func (sh *shard) remove(v *visitor) {
	p := sh.visitors[v.hash]
	if p == v {
		if v.same == nil {
			delete(sh.visitors, v.hash)
		} else {
			sh.visitors[v.hash] = v.same
		}
	} else {
		for p != nil && p.same != v {
			p = p.same
		}
		if p == nil {
			return // already gone
		}
		p.same = v.same
	}
	v.same = nil
	sh.unlink(v)
}

// cell is a private cumulative counter of landing keys (see package sink): only its
// lane's flushes write it, one at a time, so its rows only ever move by what that flush
// adds. A cell with too many keys is retired (its rows stay final in the store) and a
// fresh one with a new id takes over.
type cell struct {
	id      uint64
	version uint64
	counts  map[landKey]*[2]int64
	rewrite map[landKey]struct{} // keys an aborted flush wrote
	wrote   bool                 // by the transaction in progress
}

// active returns the lane's cell, making one when there is none. Lock should be held.
func (l *lane) active(keys int) *cell {
	if l.cell == nil {
		l.cell = &cell{id: rand.Uint64(), counts: make(map[landKey]*[2]int64, min(keys, 1024))}
	}
	return l.cell
}

func (c *cell) value(k landKey) [2]int64 {
	if p := c.counts[k]; p != nil {
		return *p
	}
	return [2]int64{}
}

// intern returns the interned s: visitors share their site, paths and utm values
// instead of each pinning a request body. "" is the zero handle.
func intern(s string) interned {
	if s == "" {
		return interned{}
	}
	return unique.Make(s)
}

// stringOf returns the string of an interned one.
func stringOf(h interned) string {
	if h == (interned{}) {
		return ""
	}
	return h.Value()
}

// internString returns the canonical copy of s.
func internString(s string) string { return stringOf(intern(s)) }
