package sink

import "github.com/rungdev/rung/schemas"

// LatestSessions keeps each visitor's latest session (the highest StartMs) from rows,
// and returns them with the earliest of their starts, for the sinks' Resume.
func LatestSessions(rows []Session) ([]Resume, int64) {
	type visitor struct{ site, anon string }
	latest := make(map[visitor]int, len(rows))
	var out []Resume
	for _, s := range rows {
		k := visitor{s.Site, s.AnonymousID}
		if i, ok := latest[k]; ok {
			if s.StartMs > out[i].Session.StartMs {
				out[i].Session = s
			}
			continue
		}
		latest[k] = len(out)
		out = append(out, Resume{Session: s})
	}
	var first int64
	for i, r := range out {
		if i == 0 || r.Session.StartMs < first {
			first = r.Session.StartMs
		}
	}
	return out, first
}

// AttachSignals gives each Resume its visitor's signals at or after its session's
// start. signals must be oldest first; they keep that order.
func AttachSignals(rs []Resume, signals []schemas.Signal) []Resume {
	type visitor struct{ site, anon string }
	idx := make(map[visitor]int, len(rs))
	for i := range rs {
		idx[visitor{rs[i].Session.Site, rs[i].Session.AnonymousID}] = i
	}
	for _, g := range signals {
		i, ok := idx[visitor{g.Site, g.AnonymousID}]
		if ok && g.ReceivedAt >= rs[i].Session.StartMs {
			rs[i].Signals = append(rs[i].Signals, g)
		}
	}
	return rs
}
