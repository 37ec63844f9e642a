package sink

import "github.com/rungdev/rung/schemas"

// GroupResume groups the signals of the sessions to resume by visitor: rows are signals
// oldest first, starts their session_ms.
func GroupResume(rows []schemas.Signal, starts []int64) []Resume {
	type visitor struct{ site, anon string }
	idx := map[visitor]int{}
	var out []Resume
	for i, g := range rows {
		k := visitor{g.Site, g.AnonymousID}
		j, ok := idx[k]
		if !ok {
			j = len(out)
			idx[k] = j
			out = append(out, Resume{Session: Session{Site: g.Site, AnonymousID: g.AnonymousID, StartMs: starts[i]}})
		}
		out[j].Signals = append(out[j].Signals, g)
	}
	return out
}
