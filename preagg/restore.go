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

// Restore reloads the sessions that may still be open from the store — each visitor's
// latest session, rebuilt by replaying the signals counted in it (landing page,
// conversion, event_ids, exposures) — so visitors who come back after a restart carry
// on the same session. Call it once, before the first flush. It returns how many
// sessions it restored.
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
	v.s = session{start: s.StartMs, last: s.StartMs}
	// Replay the signals counted in the session: the same rules as apply, without rows.
	for i := range r.Signals {
		g := &r.Signals[i]
		if g.ReceivedAt < s.StartMs {
			a.unresumed.Inc() // not a session the sessionizer could have made
			return false
		}
		if v.seen(g.EventID) {
			continue
		}
		a.remember(v, g.EventID)
		v.s.last = max(v.s.last, g.ReceivedAt)
		switch g.Type {
		case schemas.TypePageview:
			if v.s.land.before(g.ReceivedAt, g) {
				v.s.land = landing{ms: g.ReceivedAt, path: intern(g.Path), src: intern(g.UTMSource), med: intern(g.UTMMedium),
					cmp: intern(g.UTMCampaign)}
			}
		case schemas.TypeEvent:
			if _, ok := a.goals[g.Name]; ok {
				v.s.converted = true
			}
		case schemas.TypeExposure:
			if g.Experiment == "" {
				continue
			}
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
	ln := &a.lanes[shardIdx%len(a.lanes)]
	ln.mu.Lock()
	defer ln.mu.Unlock()
	sh := &a.shards[shardIdx]
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
