package preagg

import "errors"

var (
	// ErrConfig: a setting that cannot work.
	ErrConfig = errors.New("invalid pre-aggregation settings")
	// ErrQuery: a query the caller got wrong (an unknown sort, a bad time, weights that
	// do not fit); the HTTP surface answers 400.
	ErrQuery = errors.New("invalid query")
	// ErrMismatch: reconcile found pre-rolled numbers that differ from the recomputation.
	ErrMismatch = errors.New("pre-rolled numbers differ from the recomputation")
)
