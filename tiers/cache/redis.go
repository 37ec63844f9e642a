package cache

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/tiers/live"
)

// Source computes the true value of a cached total from the source of truth.
type Source func(ctx context.Context) (int64, error)

// FromQuery is a Source that runs a Tier 1 live query.
func FromQuery(db sqldb.Querier, d sqldb.Dialect, q live.Query) Source {
	return func(ctx context.Context) (int64, error) {
		v, err := q.Run(ctx, db, d)
		return int64(v), err
	}
}

// Redis is a cross-cutting total kept in one Redis key (open jobs across all
// contacts). Redis is not in the database transaction, so Add runs after the commit:
// a crash between the two, or a write path that forgets to call Add, is drift that
// only Drift will find. Safe for concurrent use.
type Redis struct {
	rdb redis.Cmdable
	key string
}

// NewRedis returns a counter stored at key.
func NewRedis(rdb redis.Cmdable, key string) *Redis {
	return &Redis{rdb: rdb, key: key}
}

// Key is the Redis key the counter lives at.
func (r *Redis) Key() string { return r.key }

// Add changes the total by delta (INCRBY) and returns the new value.
func (r *Redis) Add(ctx context.Context, delta int64) (int64, error) {
	v, err := r.rdb.IncrBy(ctx, r.key, delta).Result()
	if err != nil {
		return 0, fmt.Errorf("redis incrby %s %d: %w", r.key, delta, err)
	}
	return v, nil
}

// Get reads the cached total; ErrCold when the key is absent.
func (r *Redis) Get(ctx context.Context) (int64, error) {
	v, err := r.rdb.Get(ctx, r.key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("redis get %s: %w", r.key, ErrCold)
	}
	if err != nil {
		return 0, fmt.Errorf("redis get %s: %w", r.key, err)
	}
	return v, nil
}

// Reset sets the total from the source of truth and returns it. Adds that land
// between reading the source and the SET are overwritten; run it when writes are
// quiet, or accept that the next drift check may report them.
func (r *Redis) Reset(ctx context.Context, src Source) (int64, error) {
	v, err := src(ctx)
	if err != nil {
		return 0, fmt.Errorf("reset %s: %w", r.key, err)
	}
	if err := r.rdb.Set(ctx, r.key, v, 0).Err(); err != nil {
		return 0, fmt.Errorf("redis set %s: %w", r.key, err)
	}
	return v, nil
}

// Drift compares the cached total with the source of truth; it returns one Drift when
// they differ (a cold key counts as cached 0) and none when they agree.
func (r *Redis) Drift(ctx context.Context, src Source) ([]Drift, error) {
	cached, err := r.Get(ctx)
	if err != nil && !errors.Is(err, ErrCold) {
		return nil, fmt.Errorf("drift check %s: %w", r.key, err)
	}
	v, err := src(ctx)
	if err != nil {
		return nil, fmt.Errorf("drift check %s: %w", r.key, err)
	}
	if cached == v {
		return nil, nil
	}
	return []Drift{{Key: r.key, Cached: cached, Live: v}}, nil
}
