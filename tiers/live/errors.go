package live

import "errors"

var (
	// ErrQuery wraps a malformed Query; the message names the table, column or operator.
	ErrQuery = errors.New("invalid live query")
	// ErrMissingIndex is matched by every *MissingIndexError.
	ErrMissingIndex = errors.New("missing index")
)
