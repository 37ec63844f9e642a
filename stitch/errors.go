package stitch

import "errors"

var (
	// ErrInvalidAnonymousID is an anonymous_id that t.js could not have made.
	ErrInvalidAnonymousID = errors.New("invalid anonymous_id")
	// ErrInvalidLead is a lead_created that cannot be made; the message names the field.
	ErrInvalidLead = errors.New("invalid lead_created")
	// ErrSignals is a failure reading the telemetry sink.
	ErrSignals = errors.New("read visitor signals")
)
