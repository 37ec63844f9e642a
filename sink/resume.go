package sink

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/rungdev/rung/schemas"
)

// ResumeScope says which of the open sessions Resume reads back: those of the visitors in
// some partitions (in a cluster, an aggregator restores only the partitions it owns), at
// most Limit of them.
type ResumeScope struct {
	// Partitions is how many partitions the visitors are split into: a visitor's is
	// xxhash64(anonymous_id) % Partitions, buffer.ShardOf. Needed when Owned is set.
	Partitions int
	// Owned are the partitions to read back; empty means all.
	Owned []int
	// Limit caps the sessions read back, keeping the most recently active; 0 means no
	// cap. Where the store counts approximately (ClickHouse) it may be passed by a few
	// percent, and the reader enforces its own bound.
	Limit int
}

// Validate reports a scope that names partitions that cannot exist.
func (s ResumeScope) Validate() error {
	if len(s.Owned) == 0 {
		return nil
	}
	if s.Partitions < 1 {
		return fmt.Errorf("resume scope: %d owned partitions of %d", len(s.Owned), s.Partitions)
	}
	for _, p := range s.Owned {
		if p < 0 || p >= s.Partitions {
			return fmt.Errorf("resume scope: partition %d out of 0..%d", p, s.Partitions-1)
		}
	}
	return nil
}

// Share is the fraction of the visitors in the owned partitions, for stores that count
// all partitions and filter afterwards.
func (s ResumeScope) Share() float64 {
	if len(s.Owned) == 0 {
		return 1
	}
	return float64(len(s.Owned)) / float64(s.Partitions)
}

// Owner returns whether a visitor is in the scope's partitions; the scope must be valid.
func (s ResumeScope) Owner() func(anonymousID string) bool {
	if len(s.Owned) == 0 {
		return func(string) bool { return true }
	}
	owned := make([]bool, s.Partitions)
	for _, p := range s.Owned {
		owned[p] = true
	}
	return func(anon string) bool { return owned[xxhash.Sum64String(anon)%uint64(s.Partitions)] }
}

// ResumeFunc receives the sessions Resume reads back, a chunk at a time, so that neither
// side holds them all at once. It must not keep the slice, nor use the store (Resume
// may hold a connection). An error stops Resume, which returns it.
//
// The Signals of each Resume carry what the sessionizer replays: EventID, Type, Site,
// AnonymousID, EventAt, Seq, Path, the utm_source, medium and campaign, Name, Experiment
// and Variant. The other fields are left empty.
type ResumeFunc func(chunk []Resume) error

// ResumeChunk is how many visitors a store reads back per chunk: a few hundred bytes
// each in memory on either side.
const ResumeChunk = 100_000

// GroupResume groups the signals of the sessions to resume by visitor, each visitor's
// in their order, (event time, sequence) (rows in any order, ties kept in it); starts
// are their session_ms.
func GroupResume(rows []schemas.Signal, starts []int64) []Resume {
	type visitor struct{ site, anon string }
	idx := map[visitor]int{}
	var out []Resume
	for i, sig := range rows {
		k := visitor{sig.Site, sig.AnonymousID}
		j, ok := idx[k]
		if !ok {
			j = len(out)
			idx[k] = j
			out = append(out, Resume{Session: Session{Site: sig.Site, AnonymousID: sig.AnonymousID, StartMs: starts[i]}})
		}
		out[j].Signals = append(out[j].Signals, sig)
	}
	for i := range out {
		slices.SortStableFunc(out[i].Signals, func(a, b schemas.Signal) int {
			if c := cmp.Compare(a.EventAt, b.EventAt); c != 0 {
				return c
			}
			return cmp.Compare(a.Seq, b.Seq)
		})
	}
	return out
}
