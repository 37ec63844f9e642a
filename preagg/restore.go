package preagg

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Resumer reads back the sessions that may still be open, a chunk at a time; both sinks
// are one. It returns how many sessions in scope it left out for scope.Limit.
type Resumer interface {
	Resume(ctx context.Context, timeoutMs int64, scope sink.ResumeScope, each sink.ResumeFunc) (skipped int, err error)
}

// Restore reloads the sessions that may still be open from the store — each visitor's
// latest session, rebuilt by replaying the signals counted in it (landing page,
// conversion, event_ids, exposures) — so visitors who come back after a restart carry
// on the same session. partitions are the shards (buffer.ShardOf(anonymous_id,
// Config.Shards)) whose visitors this aggregator owns, empty for all. Call it once,
// before the first flush. It returns how many sessions it restored.
//
// It restores at most what the owned shards hold (MaxOpenSessions shared by the
// shards), the most recently active first as far as the store can tell cheaply; the
// sessions left out are counted (rung_preagg_sessions_restore_skipped_total) and, if
// their visitor comes back, start anew.
func (a *Aggregator) Restore(ctx context.Context, r Resumer, partitions []int) (int, error) {
	for _, p := range partitions {
		if p < 0 || p >= len(a.shards) {
			return 0, fmt.Errorf("restore open sessions: partition %d out of 0..%d", p, len(a.shards)-1)
		}
	}
	owned := len(partitions)
	if owned == 0 {
		owned = len(a.shards)
	}
	scope := sink.ResumeScope{Partitions: len(a.shards), Owned: partitions, Limit: a.perShard * owned}
	n, full := 0, 0
	// The late window too: a visitor whose session closed within it must be in memory
	// (see apply).
	skipped, err := r.Resume(ctx, a.timeout+a.window, scope, func(chunk []sink.Resume) error {
		for i := range chunk {
			switch a.restore(&chunk[i]) {
			case restored:
				n++
			case shardFull:
				full++
			}
		}
		return nil
	})
	a.restored.Add(n)
	a.skipped.Add(skipped + full)
	// Every shard goes on from the newest restored signal: a visitor left out closed
	// their session before it, and the late rule places their next signal from there.
	var newest int64
	for i := range a.shards {
		ln := &a.lanes[i%len(a.lanes)]
		ln.mu.Lock()
		newest = max(newest, a.shards[i].watermark)
		ln.mu.Unlock()
	}
	for i := range a.shards {
		ln := &a.lanes[i%len(a.lanes)]
		ln.mu.Lock()
		a.shards[i].sortByActivity()
		a.shards[i].watermark = max(a.shards[i].watermark, newest)
		ln.mu.Unlock()
	}
	if err != nil {
		return n, fmt.Errorf("restore open sessions: %w", err)
	}
	return n, nil
}

// restoreResult is what became of one session to restore.
type restoreResult int

const (
	restored  restoreResult = iota
	unmade                  // not a session the sessionizer could have made
	shardFull               // its shard already holds its share of MaxOpenSessions
)

// sortByActivity puts the shard's visitors back in order of last activity, which
// closing and eviction rely on: Restore adds them in the store's order. Its lane's lock
// should be held.
func (sh *shard) sortByActivity() {
	if sh.n < 2 {
		return
	}
	vs := make([]*visitor, 0, sh.n)
	for v := sh.front; v != nil; v = v.next {
		vs = append(vs, v)
	}
	slices.SortStableFunc(vs, func(x, y *visitor) int { return cmp.Compare(x.s.last, y.s.last) })
	sh.front, sh.back, sh.n = nil, nil, 0
	for _, v := range vs {
		sh.pushBack(v)
	}
}

func (a *Aggregator) restore(r *sink.Resume) restoreResult {
	s := &r.Session
	h := xxhash.Sum64String(s.AnonymousID)
	shardIdx := int(h % uint64(len(a.shards))) // buffer.ShardOf
	v := newVisitor(s.Site, s.AnonymousID, visitorHash(h, s.Site))
	v.lane = int32(shardIdx % len(a.lanes))
	v.s = session{start: s.StartMs, last: s.StartMs}
	// Replay the signals counted in the session: the same rules as apply, without rows.
	for i := range r.Signals {
		sig := &r.Signals[i]
		if sig.EventAt < s.StartMs {
			a.unresumed.Inc()
			return unmade
		}
		if v.seen(sig.EventID) {
			continue
		}
		a.remember(v, sig.EventID)
		v.s.last = max(v.s.last, sig.EventAt)
		switch sig.Type {
		case schemas.TypePageview:
			if v.s.land.before(sig.EventAt, sig) {
				v.s.land = landing{ms: sig.EventAt, path: intern(sig.Path), src: intern(sig.UTMSource), med: intern(sig.UTMMedium),
					cmp: intern(sig.UTMCampaign)}
			}
		case schemas.TypeEvent:
			if _, ok := a.goals[sig.Name]; ok {
				v.s.converted = true
			}
		case schemas.TypeExposure:
			if sig.Experiment == "" {
				continue
			}
			found := false
			for j := range v.exps {
				e := &v.exps[j]
				if e.exp == sig.Experiment {
					found = true
					if sig.EventAt < e.ms || (sig.EventAt == e.ms && sig.Variant < e.variant) {
						e.ms, e.variant = sig.EventAt, internString(sig.Variant)
					}
				}
			}
			if !found {
				v.exps = append(v.exps, expo{exp: internString(sig.Experiment), variant: internString(sig.Variant), ms: sig.EventAt})
			}
		}
	}
	ln := &a.lanes[shardIdx%len(a.lanes)]
	ln.mu.Lock()
	defer ln.mu.Unlock()
	sh := &a.shards[shardIdx]
	if old := sh.get(v.hash, s.Site, s.AnonymousID); old != nil {
		sh.remove(old)
		a.open.Add(-1)
	}
	sh.watermark = max(sh.watermark, v.s.last)
	if sh.n >= a.perShard {
		return shardFull
	}
	sh.add(v)
	a.open.Add(1)
	return restored
}
