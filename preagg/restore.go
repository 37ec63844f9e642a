package preagg

import (
	"context"
	"fmt"
	"strings"

	"github.com/cespare/xxhash/v2"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Resumer reads back the sessions that may still be open; both sinks are one.
type Resumer interface {
	Resume(ctx context.Context, timeoutMs int64) ([]sink.Resume, error)
}

// Restore reloads the sessions that may still be open from the store, with the
// event_ids and exposures they hold, so visitors who come back after a restart carry on
// the same session. Call it once, before the first flush. It returns how many sessions
// it restored; a visitor whose latest session row is missing (a write the sink gave up
// on) starts afresh and is counted in rung_preagg_sessions_not_restored_total.
func (a *Aggregator) Restore(ctx context.Context, r Resumer) (int, error) {
	rs, err := r.Resume(ctx, a.timeout)
	if err != nil {
		return 0, fmt.Errorf("restore open sessions: %w", err)
	}
	n := 0
	for i := range rs {
		if a.restore(&rs[i]) {
			n++
		}
	}
	a.restored.Add(n)
	return n, nil
}

func (a *Aggregator) restore(r *sink.Resume) bool {
	s := &r.Session
	h := xxhash.Sum64String(s.AnonymousID)
	shardIdx := int(h % uint64(len(a.shards))) // buffer.ShardOf
	v := &visitor{site: intern(s.Site), anon: strings.Clone(s.AnonymousID), hash: visitorHash(h, s.Site),
		lane: int32(shardIdx % len(a.lanes))}
	v.ids = v.idsInline[:0]
	v.s = session{start: s.StartMs, last: s.StartMs, version: s.Version, converted: s.Converted}
	if s.LandingMs > 0 {
		v.s.land = landing{ms: s.LandingMs, path: intern(s.LandingPath), src: intern(s.UTMSource),
			med: intern(s.UTMMedium), cmp: intern(s.UTMCampaign)}
	}
	for i := range r.Signals {
		g := &r.Signals[i]
		if g.ReceivedAt-v.s.last >= a.timeout {
			a.unresumed.Inc() // a later session exists in raw signals but not in the rollups
			return false
		}
		if v.seen(g.EventID) {
			continue
		}
		a.remember(v, g.EventID)
		v.s.last = max(v.s.last, g.ReceivedAt)
		if g.Type == schemas.TypeExposure {
			found := false
			for j := range v.exps {
				e := &v.exps[j]
				if e.exp == g.Experiment {
					found = true
					if g.ReceivedAt < e.ms || (g.ReceivedAt == e.ms && g.Variant < e.variant) {
						e.ms, e.variant = g.ReceivedAt, internString(g.Variant)
					}
				}
			}
			if !found {
				v.exps = append(v.exps, expo{exp: internString(g.Experiment), variant: internString(g.Variant), ms: g.ReceivedAt})
			}
		}
	}
	sh := &a.shards[shardIdx]
	ln := &a.lanes[shardIdx%len(a.lanes)]
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if old := sh.get(v.hash, s.Site, s.AnonymousID); old != nil {
		sh.remove(old)
		a.open.Add(-1)
	}
	sh.watermark = max(sh.watermark, v.s.last)
	if sh.n >= a.perShard && sh.front != nil {
		sh.remove(sh.front)
		a.open.Add(-1)
		a.evicted.Inc()
	}
	sh.add(v)
	a.open.Add(1)
	return true
}
