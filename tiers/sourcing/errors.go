package sourcing

import (
	"errors"
	"fmt"
)

var (
	// ErrConflict is matched by every *ConflictError.
	ErrConflict = errors.New("stream version conflict")
	// ErrInvalid wraps a malformed event or declaration; the message names the field.
	ErrInvalid = errors.New("invalid")
)

// ConflictError is returned by Append when the stream is not at the version the caller
// expected: someone else appended since the caller read it. Reload, re-decide, retry.
type ConflictError struct {
	Stream   string
	Expected int64
	Actual   int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("append to stream %s: expected version %d, stream is at %d", e.Stream, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
