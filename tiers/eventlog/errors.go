package eventlog

import "errors"

var (
	// ErrUndefined is returned when an event's name and version have no Definition.
	ErrUndefined = errors.New("undefined event")
	// ErrPayload wraps a payload that does not satisfy its definition's schema.
	ErrPayload = errors.New("payload does not match its schema")
	// ErrRollup wraps a malformed Rollup declaration.
	ErrRollup = errors.New("invalid rollup")
)
