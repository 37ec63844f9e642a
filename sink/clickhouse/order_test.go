package clickhouse

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/rungdev/rung/schemas"
)

// The order fill writes rows in is the signals table's key order, (site, date,
// anonymous_id, received_ms), whatever the anonymous_ids share: batches of random
// signals sorted by order match the same signals sorted by a plain comparison of the
// key, and rows of one key keep no particular order but all come.
func TestOrder(t *testing.T) {
	const day = msPerDay
	cases := []struct {
		name  string
		sites []string
		anon  func(r *rand.Rand) string
		days  int
	}{
		{"uuid", []string{"example.com"}, func(r *rand.Rand) string { return fmt.Sprintf("%08x-%04x", r.Uint32(), r.Uint32()&0xffff) }, 1},
		{"shared prefix", []string{"example.com"}, func(r *rand.Rand) string { return fmt.Sprintf("visitor-%08d", r.IntN(500)) }, 1},
		{"prefix of another", []string{"a.example", "b.example"}, func(r *rand.Rand) string {
			return strings.Repeat("v", 1+r.IntN(12)) + strings.Repeat("\x00", r.IntN(2))
		}, 2},
		{"many sites, days", []string{"c.example", "a.example", "b.example", "", "a.example.org"}, func(r *rand.Rand) string {
			return fmt.Sprint(r.IntN(40))
		}, 3},
		{"empty ids", []string{"example.com"}, func(r *rand.Rand) string { return strings.Repeat("x", r.IntN(2)) }, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(c.name))))
			var o order
			for _, n := range []int{0, 1, 2, 17, 3000} {
				signals := make([]schemas.Signal, n)
				shards := make([]int, n)
				for i := range signals {
					signals[i] = schemas.Signal{Site: c.sites[r.IntN(len(c.sites))], AnonymousID: c.anon(r),
						ReceivedAt: 1_765_000_000_000 + int64(r.IntN(c.days))*day + int64(r.IntN(5000))}
					shards[i] = r.IntN(2)
				}
				for _, shard := range []int{-1, 1} {
					var want []int32
					for i := range signals {
						if shard < 0 || shards[i] == shard {
							want = append(want, int32(i))
						}
					}
					key := func(i int32) (string, int64, string, int64) {
						g := &signals[i]
						return g.Site, g.ReceivedAt / day, g.AnonymousID, g.ReceivedAt
					}
					slices.SortFunc(want, func(x, y int32) int {
						s1, d1, a1, m1 := key(x)
						s2, d2, a2, m2 := key(y)
						return cmp.Or(strings.Compare(s1, s2), cmp.Compare(d1, d2), strings.Compare(a1, a2), cmp.Compare(m1, m2))
					})
					if shard < 0 {
						o.sort(signals, nil, 0)
					} else {
						o.sort(signals, shards, shard)
					}
					if len(o.keys) != len(want) {
						t.Fatalf("%d rows, shard %d: ordered %d, want %d", n, shard, len(o.keys), len(want))
					}
					seen := make(map[int32]bool)
					for j, k := range o.keys {
						s1, d1, a1, m1 := key(k.i)
						s2, d2, a2, m2 := key(want[j])
						if s1 != s2 || d1 != d2 || a1 != a2 || m1 != m2 || seen[k.i] {
							t.Fatalf("%d rows, shard %d, position %d: row %d (%q %d %q %d), want (%q %d %q %d)",
								n, shard, j, k.i, s1, d1, a1, m1, s2, d2, a2, m2)
						}
						seen[k.i] = true
					}
				}
			}
		})
	}
}
