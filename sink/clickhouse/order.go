package clickhouse

import (
	"cmp"
	"encoding/binary"
	"slices"
	"strings"

	"github.com/rungdev/rung/schemas"
)

// order sorts a batch's rows into the order of the signals table's key (site, date,
// anonymous_id, received_ms). A key holds no pointer and most comparisons read no
// string: the sites are ranked, and an anonymous_id is compared by the 8 bytes that
// follow the prefix every anonymous_id of the batch shares; the strings are read only
// when those tie. Reused across flushes, as the columns are.
type order struct {
	keys  []rowKey
	sites []string          // the batch's distinct sites, ranked
	rank  map[string]uint32 // the rank of each
}

// rowKey is one row's place in the order.
type rowKey struct {
	anon uint64 // the 8 bytes of anonymous_id after the shared prefix, big-endian, zero-padded
	ms   int64
	site uint32 // the rank of the site
	day  int32
	i    int32 // the row in the batch
}

const msPerDay = 24 * 60 * 60 * 1000

// sort orders the signals that shards gives shard s (all when shards is nil).
func (o *order) sort(signals []schemas.Signal, shards []int, s int) {
	o.keys, o.sites = o.keys[:0], o.sites[:0]
	if o.rank == nil {
		o.rank = make(map[string]uint32)
	}
	shared := -1 // the length of the prefix all anonymous_ids share; -1 before the first
	var first, site string
	for i := range signals {
		if shards != nil && shards[i] != s {
			continue
		}
		g := &signals[i]
		if g.Site != site || len(o.sites) == 0 {
			if _, ok := o.rank[g.Site]; !ok {
				o.rank[g.Site] = 0
				o.sites = append(o.sites, g.Site)
			}
			site = g.Site
		}
		if shared < 0 {
			first, shared = g.AnonymousID, len(g.AnonymousID)
		} else {
			shared = commonPrefix(first[:shared], g.AnonymousID)
		}
		o.keys = append(o.keys, rowKey{ms: g.ReceivedAt, day: int32(g.ReceivedAt / msPerDay), i: int32(i)})
	}
	if len(o.keys) == 0 {
		return
	}
	slices.Sort(o.sites)
	for r, site := range o.sites {
		o.rank[site] = uint32(r)
	}
	for j := range o.keys {
		g := &signals[o.keys[j].i]
		if len(o.sites) > 1 {
			o.keys[j].site = o.rank[g.Site]
		}
		var b [8]byte
		copy(b[:], g.AnonymousID[shared:])
		o.keys[j].anon = binary.BigEndian.Uint64(b[:])
	}
	slices.SortFunc(o.keys, func(x, y rowKey) int {
		if c := cmp.Compare(x.site, y.site); c != 0 {
			return c
		}
		if c := cmp.Compare(x.day, y.day); c != 0 {
			return c
		}
		if c := cmp.Compare(x.anon, y.anon); c != 0 {
			return c
		}
		if c := strings.Compare(signals[x.i].AnonymousID, signals[y.i].AnonymousID); c != 0 {
			return c
		}
		return cmp.Compare(x.ms, y.ms)
	})
	clear(o.sites) // the strings are the batch's
	clear(o.rank)
}

// commonPrefix returns the length of the prefix a and b share.
func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
