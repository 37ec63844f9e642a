package sourcing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
)

// Projection folds a stream into state. Apply must be pure — (state, event) → state,
// no I/O, no clock — so that every replay gives the same answer. S must round-trip
// through encoding/json, which is how snapshots store it.
type Projection[S any] struct {
	Name string
	// Version identifies Apply's meaning. Bump it when you fix or change Apply: the
	// snapshots of other versions are then ignored and state is re-derived from events.
	Version int
	Init    func() S
	Apply   func(state S, r Record) (S, error)
	// SnapshotEvery N > 0 saves the state at every N-th stream version that Load folds,
	// so later loads replay at most N-1 events past the latest snapshot.
	SnapshotEvery int64
}

// State is a folded stream.
type State[S any] struct {
	Value    S
	Version  int64 // the stream version folded up to (0: no events)
	Snapshot int64 // version of the snapshot replay started from (0: from the first event)
	Replayed int   // events folded past the snapshot
}

func (p Projection[S]) check() error {
	if p.Name == "" || p.Version < 1 || p.Init == nil || p.Apply == nil || p.SnapshotEvery < 0 {
		return fmt.Errorf("%w projection %q v%d: needs a name, a version from 1, Init and Apply", ErrInvalid, p.Name, p.Version)
	}
	return nil
}

type snapshot struct {
	version      int64
	lastOccurred time.Time
	state        []byte
}

// latest finds the newest snapshot of p for stream; when at is non-zero, only one
// whose events all occurred at or before at.
func (s *Store) latest(ctx context.Context, name string, pv int, stream string, at time.Time) (snapshot, bool, error) {
	q := `SELECT version, last_occurred_at, state FROM stream_snapshots
WHERE stream_id = ? AND projection = ? AND projection_version = ?`
	args := []any{stream, name, pv}
	if !at.IsZero() {
		q += ` AND last_occurred_at <= ?`
		args = append(args, s.d.Time(at))
	}
	var sn snapshot
	var last sqldb.Time
	err := s.db.QueryRowContext(ctx, s.d.Rebind(q+` ORDER BY version DESC LIMIT 1`), args...).Scan(&sn.version, &last, &sn.state)
	if errors.Is(err, sql.ErrNoRows) {
		return sn, false, nil
	}
	if err != nil {
		return sn, false, fmt.Errorf("read snapshot of %s for %s: %w", stream, name, err)
	}
	sn.lastOccurred = last.Time
	return sn, true, nil
}

// Load folds stream to its current version, starting from the newest snapshot of this
// projection version, and saves new snapshots as it passes every SnapshotEvery-th
// version.
func Load[S any](ctx context.Context, s *Store, p Projection[S], stream string) (State[S], error) {
	return fold(ctx, s, p, stream, time.Time{})
}

// AsOf folds stream with only the events that occurred at or before at: the entity as
// it was then. For "as of 2026-03-31", pass the last instant of that day. It uses a
// snapshot only if every event in it occurred by at, and saves none.
func AsOf[S any](ctx context.Context, s *Store, p Projection[S], stream string, at time.Time) (State[S], error) {
	if at.IsZero() {
		return State[S]{}, fmt.Errorf("%w: as-of time is zero", ErrInvalid)
	}
	return fold(ctx, s, p, stream, at)
}

func fold[S any](ctx context.Context, s *Store, p Projection[S], stream string, at time.Time) (State[S], error) {
	var st State[S]
	if err := p.check(); err != nil {
		return st, err
	}
	st.Value = p.Init()
	sn, ok, err := s.latest(ctx, p.Name, p.Version, stream, at)
	if err != nil {
		return st, err
	}
	var lastOccurred time.Time
	if ok {
		if err := json.Unmarshal(sn.state, &st.Value); err != nil {
			return st, fmt.Errorf("decode snapshot of %s at %d for %s v%d: %w", stream, sn.version, p.Name, p.Version, err)
		}
		st.Version, st.Snapshot, lastOccurred = sn.version, sn.version, sn.lastOccurred
	}
	recs, err := s.Read(ctx, stream, st.Version, at)
	if err != nil {
		return st, err
	}
	for _, r := range recs {
		if st.Value, err = p.Apply(st.Value, r); err != nil {
			return st, fmt.Errorf("apply %s %s (stream %s version %d) in %s v%d: %w", r.ID, r.Type, stream, r.Version, p.Name, p.Version, err)
		}
		st.Version = r.Version
		st.Replayed++
		if r.OccurredAt.After(lastOccurred) {
			lastOccurred = r.OccurredAt
		}
		if at.IsZero() && p.SnapshotEvery > 0 && r.Version%p.SnapshotEvery == 0 {
			if err := s.saveSnapshot(ctx, p.Name, p.Version, stream, r.Version, lastOccurred, st.Value); err != nil {
				return st, err
			}
		}
	}
	return st, nil
}

func (s *Store) saveSnapshot(ctx context.Context, name string, pv int, stream string, version int64, last time.Time, state any) error {
	b, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("encode snapshot of %s at %d for %s: %w", stream, version, name, err)
	}
	_, err = s.db.ExecContext(ctx, s.d.Rebind(`INSERT INTO stream_snapshots
(stream_id, projection, projection_version, version, last_occurred_at, state, taken_at) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (stream_id, projection, projection_version, version) DO NOTHING`),
		stream, name, pv, version, s.d.Time(last), s.d.JSONArg(b), s.d.Time(s.now()))
	if err != nil {
		return fmt.Errorf("save snapshot of %s at %d for %s: %w", stream, version, name, err)
	}
	return nil
}

// Decode unmarshals a record's data into T, naming the event on failure.
func Decode[T any](r Record) (T, error) {
	var v T
	if err := json.Unmarshal(r.Data, &v); err != nil {
		return v, fmt.Errorf("decode %s v%d (%s): %w", r.Type, r.SchemaVersion, r.ID, err)
	}
	return v, nil
}
