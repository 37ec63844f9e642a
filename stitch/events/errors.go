package events

import "errors"

// ErrInvalid wraps every rejection of a malformed event; the message names the field.
var ErrInvalid = errors.New("invalid event")
