package sqlite

import (
	"context"
	"database/sql"
	"strings"

	"github.com/rungdev/rung/sink"
)

// upsert is a multi-row INSERT ... ON CONFLICT statement, prepared for every row count
// up to per, so a batch of rollup rows takes a few statements.
type upsert struct {
	cols int
	per  int
	sql  []string // sql[n] inserts n rows
}

func newUpsert(head string, cols int, conflict string) *upsert {
	u := &upsert{cols: cols, per: 900 / cols}
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	u.sql = make([]string, u.per+1)
	for n := 1; n <= u.per; n++ {
		u.sql[n] = head + " VALUES " + strings.TrimSuffix(strings.Repeat(row+",", n), ",") + " " + conflict
	}
	return u
}

// execer runs a statement in a transaction (SQLite.exec).
type execer func(ctx context.Context, tx *sql.Tx, query string, args []any) error

// exec runs the statement over n rows; add appends row i's values to args.
func (u *upsert) exec(ctx context.Context, tx *sql.Tx, ex execer, n int, add func(args []any, i int) []any) error {
	args := make([]any, 0, u.cols*min(n, u.per))
	for i := 0; i < n; {
		k := min(n-i, u.per)
		args = args[:0]
		for j := i; j < i+k; j++ {
			args = add(args, j)
		}
		if err := ex(ctx, tx, u.sql[k], args); err != nil {
			return err
		}
		i += k
	}
	return nil
}

// The upserts only move a row towards its winner: the higher version, the earlier
// exposure, the later conversion. Rows are applied in order, so a key repeated in one
// statement ends at the winner too.
var (
	upsertLanding = newUpsert(`INSERT INTO landing_hourly (site, hour_ms, landing_path, utm_source, utm_medium,
		utm_campaign, cell, sessions, converted, version)`, 10,
		`ON CONFLICT (site, hour_ms, landing_path, utm_source, utm_medium, utm_campaign, cell) DO UPDATE SET
		sessions = excluded.sessions, converted = excluded.converted, version = excluded.version
		WHERE excluded.version > landing_hourly.version`)
	upsertExposures = newUpsert(`INSERT INTO exposures (site, experiment, anonymous_id, first_ms, variant)`, 5,
		`ON CONFLICT (site, experiment, anonymous_id) DO UPDATE SET first_ms = excluded.first_ms, variant = excluded.variant
		WHERE (excluded.first_ms, excluded.variant) < (exposures.first_ms, exposures.variant)`)
	upsertConversions = newUpsert(`INSERT INTO conversions (site, anonymous_id, last_ms)`, 3,
		`ON CONFLICT (site, anonymous_id) DO UPDATE SET last_ms = excluded.last_ms
		WHERE excluded.last_ms > conversions.last_ms`)
)

// writeRollups applies the batch's rollup rows in tx. SQLite integers are signed: a
// version or cell id is stored as the int64 with the same bits.
func writeRollups(ctx context.Context, tx *sql.Tx, b *sink.Batch, ex execer) error {
	err := upsertLanding.exec(ctx, tx, ex, len(b.Landing), func(args []any, i int) []any {
		l := &b.Landing[i]
		return append(args, l.Site, l.HourMs, l.LandingPath, l.UTMSource, l.UTMMedium, l.UTMCampaign,
			int64(l.Cell), l.Sessions, l.Converted, int64(l.Version))
	})
	if err != nil {
		return err
	}
	err = upsertExposures.exec(ctx, tx, ex, len(b.Exposures), func(args []any, i int) []any {
		e := &b.Exposures[i]
		return append(args, e.Site, e.Experiment, e.AnonymousID, e.FirstMs, e.Variant)
	})
	if err != nil {
		return err
	}
	return upsertConversions.exec(ctx, tx, ex, len(b.Conversions), func(args []any, i int) []any {
		c := &b.Conversions[i]
		return append(args, c.Site, c.AnonymousID, c.LastMs)
	})
}
