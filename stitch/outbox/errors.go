package outbox

import "errors"

var (
	// ErrInvalidEvent is returned for an event that cannot be written; the message names the field.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrUnavailable marks a shipping failure that is not the row's fault (the broker is
	// down or unreachable): the row keeps its attempts and the relay backs off as a whole.
	ErrUnavailable = errors.New("broker unavailable")
	// ErrBadMessage is a broker message the projector cannot turn into an event.
	ErrBadMessage = errors.New("bad event message")
	// ErrConfig is a configuration value that cannot work; the message names it.
	ErrConfig = errors.New("invalid outbox configuration")
)
