package schemas

import "errors"

var (
	// ErrUnknownSchema: no schema by that name is registered.
	ErrUnknownSchema = errors.New("unknown schema")

	// Errors about a whole /collect body; a caller answers 400 (or 413 for
	// ErrBatchTooLarge) and stores nothing.
	ErrSyntax        = errors.New("malformed JSON")
	ErrTooDeep       = errors.New("JSON nested too deeply")
	ErrNotSignals    = errors.New("body is neither a signal object nor an array of signals")
	ErrEmpty         = errors.New("no signals in body")
	ErrBatchTooLarge = errors.New("batch has too many signals")
)
