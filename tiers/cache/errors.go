package cache

import "errors"

var (
	// ErrDecl wraps a malformed Counter or View declaration.
	ErrDecl = errors.New("invalid cache declaration")
	// ErrNoParent is returned when Adjust finds no parent row to count into.
	ErrNoParent = errors.New("no parent row")
	// ErrCold is returned by Redis.Get when the counter was never set (or was evicted):
	// the caller should Reset it from the source of truth rather than read 0.
	ErrCold = errors.New("counter not cached")
)
