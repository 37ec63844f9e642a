// Package sink owns where signals and rollups are stored: the Sink interface, its two
// implementations (sink/clickhouse for production, sink/sqlite for the embedded default),
// their DDL and migrations, the SQL that reads them back (the rollups, and the
// recomputation of the rollups from raw signals that reconcile audits them with), and
// sinktest, the conformance suite both must pass.
//
// # Rollups are idempotent
//
// A flush may be retried after an error whose first attempt landed (ClickHouse has no
// transactions), so no rollup row is a delta. Every row is an absolute value with a
// version, and readers aggregate so that writing a row twice, or an older version after
// a newer one, changes nothing:
//
//   - LandingCell: cumulative session and conversion counts of one landing key (site,
//     hour, landing page, utm) contributed by one cell, keyed by (key, Cell); the highest
//     Version wins and readers sum the cells. A cell is a private counter of the
//     pre-aggregator that only one flush at a time writes, so its counts only grow by
//     what that flush adds (they may go down too: a session moves between keys when a
//     late pageview changes its landing page).
//   - Exposure: a visitor's first exposure to an experiment; the smallest (FirstMs,
//     Variant) wins.
//   - Conversion: a visitor's latest conversion; the largest LastMs wins.
//
// ClickHouse keeps these in ReplacingMergeTree tables (merges keep the winning row) and
// every query aggregates (argMax, min, max) so it is right before any merge has run;
// SQLite keeps one row per key with upserts that only move towards the winner.
//
// # Sessions are pre-rolled into the raw signals
//
// Each stored signal carries session_ms: the start of the session the pre-aggregator
// counted it in, or 0 when it counted it nowhere (a bot, a duplicate, or a sink written
// without pre-aggregation). A session is (site, anonymous_id, session_ms), decided once,
// as the signal arrived, and stored with it at no extra insert; its landing page and
// conversion are read from its signals. Raw rows are written once and never change, so
// this too is idempotent.
package sink

import (
	"context"
	"errors"
	"fmt"

	"github.com/rungdev/rung/schemas"
)

// Sink stores batches. Write is called concurrently by the buffer's flushers, each with
// its own batch; a Sink must be safe for that. Write retries by the class of the error
// (see Class: an unreachable store until ctx is cancelled, a transient error a few
// times, a permanent one never) and returns an error, a *WriteError naming the table,
// only when it gives up. SQLite stores a batch wholly or not at all; ClickHouse writes
// table by table, raw signals first, and every rollup row is idempotent, so a batch
// retried after an ambiguous failure is counted once. Write does not keep the batch
// after it returns.
type Sink interface {
	Write(ctx context.Context, b *Batch) error
	// Ping reports whether the store answers now, for /readyz.
	Ping(ctx context.Context) error
	Close() error
}

// Key names a stored signal to Landed: an event_id is the client's, and is taken to
// be unique only together with its visitor. Landed maps the key of every signal the
// store holds to whether its rollups are stored too (false only where the two are
// written apart and a writer died between them).
type Key struct{ AnonymousID, EventID string }

// ResendWindow is how far before a signal's received_at Landed looks for an earlier
// copy of it: a client's resend of a signal whose answer it never saw, or was told 503
// for while it was stored after all, is recognised when it comes within this time of
// the first copy. (t.js resends a signal it holds with backoff, or at the next page of
// the site that loads.)
const ResendWindow = schemas.MaxLagMs // ms: as long as t.js keeps a signal it has not delivered

// KeyOf returns s's Key.
func KeyOf(s *schemas.Signal) Key { return Key{s.AnonymousID, s.EventID} }

// Batch is what one flush writes: the raw signals with their sessions, and the rollups
// pre-aggregated from them. The rollup rows are the new state of whatever the signals
// changed (see the package comment); a batch without signals may still carry rollups.
type Batch struct {
	Signals []schemas.Signal
	// SessionMs is, per signal, the start of the session it was counted in (Unix ms), 0
	// when none; nil means 0 for all.
	SessionMs   []int64
	Landing     []LandingCell
	Exposures   []Exposure
	Conversions []Conversion
	// Counted are signals an earlier write stored raw without their rollups (Landed
	// said false), whose rollups this batch carries: a store that writes the two apart
	// records them counted, and does not store them again.
	Counted []schemas.Signal
}

// Reset empties b for reuse.
func (b *Batch) Reset() {
	b.Signals = b.Signals[:0]
	b.SessionMs = b.SessionMs[:0]
	b.Landing = b.Landing[:0]
	b.Exposures = b.Exposures[:0]
	b.Conversions = b.Conversions[:0]
	b.Counted = b.Counted[:0]
}

// Empty reports whether the batch holds nothing to write.
func (b *Batch) Empty() bool {
	return len(b.Signals)+len(b.Landing)+len(b.Exposures)+len(b.Conversions)+len(b.Counted) == 0
}

// Rollups reports whether the batch carries rollup rows.
func (b *Batch) Rollups() bool {
	return len(b.Landing)+len(b.Exposures)+len(b.Conversions) > 0
}

// SessionOf returns the session start of signal i, 0 when none.
func (b *Batch) SessionOf(i int) int64 {
	if i < len(b.SessionMs) {
		return b.SessionMs[i]
	}
	return 0
}

// Session is one session: identified by (Site, AnonymousID, StartMs). Its landing page
// is the path of its first pageview (LandingMs is that pageview's time, 0 while it has
// none; ties in one millisecond go to the smallest (path, utm_source, utm_medium,
// utm_campaign)), and its utm values come from the same pageview.
type Session struct {
	Site        string
	AnonymousID string
	StartMs     int64
	LandingMs   int64
	LandingPath string
	UTMSource   string
	UTMMedium   string
	UTMCampaign string
	Converted   bool
}

// LandingKey is what the landing-page rollup is grouped by. HourMs is the start of the
// UTC hour in which the sessions started, in Unix milliseconds.
type LandingKey struct {
	Site        string
	HourMs      int64
	LandingPath string
	UTMSource   string
	UTMMedium   string
	UTMCampaign string
}

// LandingCell is one cell's cumulative counts for one key (see the package comment).
type LandingCell struct {
	LandingKey
	Cell      uint64
	Sessions  int64
	Converted int64
	Version   uint64
}

// Exposure is a visitor's first exposure to an experiment as far as the writer knows;
// the store keeps the smallest (FirstMs, Variant) per (Site, Experiment, AnonymousID).
type Exposure struct {
	Site        string
	Experiment  string
	AnonymousID string
	FirstMs     int64
	Variant     string
}

// Conversion is the time of a visitor's latest conversion as far as the writer knows;
// the store keeps the largest per (Site, AnonymousID).
type Conversion struct {
	Site        string
	AnonymousID string
	LastMs      int64
}

// LandingFilter selects sessions for the landing-page query. Times are Unix ms and are
// applied to the session's start hour: [FromMs, ToMs) is widened to whole hours. Empty
// strings match anything.
type LandingFilter struct {
	Site        string
	FromMs      int64
	ToMs        int64
	UTMSource   string
	UTMMedium   string
	UTMCampaign string
}

// ReferrerFilter selects the pageviews of one path received in [FromMs, ToMs) (Unix
// ms), on one site or (empty) any; Limit is how many referrers to return.
type ReferrerFilter struct {
	Site   string
	Path   string
	FromMs int64
	ToMs   int64
	Limit  int
}

// ReferrerCount is how many pageviews (distinct event_id, bots left out) came with one
// referrer, "" for none.
type ReferrerCount struct {
	Referrer  string
	Pageviews int64
}

// Rows is what both sinks' drivers return for a query (database/sql's and
// clickhouse-go's rows alike).
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// ScanReferrers reads (referrer, pageviews) rows.
func ScanReferrers(rows Rows) ([]ReferrerCount, error) {
	var out []ReferrerCount
	for rows.Next() {
		var r ReferrerCount
		if err := rows.Scan(&r.Referrer, &r.Pageviews); err != nil {
			return nil, fmt.Errorf("scan referrer: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ScanSessions reads (site, anonymous_id, start_ms, landing_ms, landing_path,
// utm_source, utm_medium, utm_campaign, converted) rows; converted is 0 or 1.
func ScanSessions(rows Rows) ([]Session, error) {
	var out []Session
	for rows.Next() {
		var s Session
		if err := rows.Scan(&s.Site, &s.AnonymousID, &s.StartMs, &s.LandingMs, &s.LandingPath, &s.UTMSource,
			&s.UTMMedium, &s.UTMCampaign, &s.Converted); err != nil {
			return nil, fmt.Errorf("scan session: %w", err)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ScanLandingHours reads (site, hour_ms, landing_path, utm_source, utm_medium,
// utm_campaign, sessions, converted) rows.
func ScanLandingHours(rows Rows) ([]LandingHour, error) {
	var out []LandingHour
	for rows.Next() {
		var l LandingHour
		if err := rows.Scan(&l.Site, &l.HourMs, &l.LandingPath, &l.UTMSource, &l.UTMMedium, &l.UTMCampaign,
			&l.Sessions, &l.Converted); err != nil {
			return nil, fmt.Errorf("scan landing hour: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// ScanExposures reads (site, experiment, anonymous_id, first_ms, variant, converted)
// rows; converted is 0 or 1, which both drivers scan into a bool.
func ScanExposures(rows Rows) ([]VisitorExposure, error) {
	var out []VisitorExposure
	for rows.Next() {
		var e VisitorExposure
		if err := rows.Scan(&e.Site, &e.Experiment, &e.AnonymousID, &e.FirstMs, &e.Variant, &e.Converted); err != nil {
			return nil, fmt.Errorf("scan exposure: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// LandingCount is one landing page's sessions and converting sessions.
type LandingCount struct {
	LandingPath string
	Sessions    int64
	Converted   int64
}

// ExperimentFilter selects an experiment's visitors by the time of their first exposure
// ([FromMs, ToMs), Unix ms); Site "" means every site.
type ExperimentFilter struct {
	Site       string
	Experiment string
	FromMs     int64
	ToMs       int64
}

// VariantCount is one variant's visitors (by first exposure) and how many of them
// converted after that exposure (strictly: see package preagg on order).
type VariantCount struct {
	Variant   string
	Visitors  int64
	Converted int64
}

// ExperimentInfo names an experiment with its exposed visitors.
type ExperimentInfo struct {
	Experiment string
	Visitors   int64
	FirstMs    int64
	LastMs     int64
}

// Rules are the sessionization rules the pre-aggregator runs with; the recomputation
// from raw signals needs the same ones.
type Rules struct {
	SessionTimeoutMs int64    // a gap of at least this long starts a new session
	Goals            []string // event names that are conversions
}

// Rollups are the rollups of a time range, pre-rolled or recomputed from raw signals, in
// a canonical order so two of them can be compared row by row.
type Rollups struct {
	Sessions  []Session         // started in the range; by (Site, AnonymousID, StartMs)
	Landing   []LandingHour     // hours in the range; by key
	Exposures []VisitorExposure // first exposed in the range; by (Site, Experiment, AnonymousID)
}

// LandingHour is one hour's sessions and converting sessions for one landing key.
type LandingHour struct {
	LandingKey
	Sessions  int64
	Converted int64
}

// VisitorExposure is a visitor's first exposure and whether they converted after
// it.
type VisitorExposure struct {
	Exposure
	Converted bool
}

// Resume is what the pre-aggregator needs to carry on an open session after a restart:
// the visitor and the session's start (Session.StartMs; the other fields are unset),
// and the signals counted in it, oldest first.
type Resume struct {
	Session Session
	Signals []schemas.Signal
}

// ErrInvalidDSN: a store address that cannot be used.
var ErrInvalidDSN = errors.New("invalid store address")

// ErrNotMigrated: a store opened read-only lacks rung's tables. A reader never creates
// them: that is the writer's job, so a typo in an address cannot leave an empty store
// behind.
var ErrNotMigrated = errors.New("the store has no rung tables: run rung migrate or rung serve first")

// DefaultDatabase is the ClickHouse database rung uses unless told otherwise.
const DefaultDatabase = "rung"

// HourMs returns the start of the UTC hour holding ms.
func HourMs(ms int64) int64 {
	const hour = 3600_000
	h := ms - ms%hour
	if ms < 0 && ms%hour != 0 {
		h -= hour
	}
	return h
}
