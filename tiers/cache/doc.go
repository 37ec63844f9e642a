// Package cache is Tier 2 of the ladder, "cached current state": the same values as
// Tier 1, kept ready so that reading them is cheap. It owns three forms of the cache and
// one way to trust them:
//
//   - Counter, a counter-cache column on a parent row (contacts.jobs_count), changed in
//     the same transaction as the child rows it counts, so the two commit together;
//   - Redis, a counter in Redis for cross-cutting totals (open jobs across the account),
//     changed after the database commits;
//   - View, a materialized view refreshed on demand (REFRESH MATERIALIZED VIEW
//     CONCURRENTLY on PostgreSQL; a table rebuilt in one transaction on SQLite);
//   - and for each, Drift, which recomputes the live value from the source of truth
//     and reports every place the cache disagrees, and a reset/backfill that rewrites
//     the cache from the source of truth.
//
// What this tier cannot do: it still has no history, and a cache can drift whenever a
// write path forgets it (a bulk UPDATE, a crash between the commit and the Redis call).
// Run the drift check on a schedule; that is the maintenance cost of this tier.
package cache

import "fmt"

// Drift is one cached value that disagrees with the source of truth.
type Drift struct {
	Key    string // the parent row's key, or the Redis key
	Cached int64
	Live   int64
}

func (d Drift) String() string {
	return fmt.Sprintf("%s: cached %d, live %d", d.Key, d.Cached, d.Live)
}
