package preagg

import "errors"

var (
	// ErrConfig: a setting that cannot work.
	ErrConfig = errors.New("invalid pre-aggregation settings")
	// ErrRange: reconcile was asked for a window whose start is not before its end.
	ErrRange = errors.New("invalid time range")
	// ErrMismatch: reconcile found pre-rolled numbers that differ from the recomputation.
	ErrMismatch = errors.New("pre-rolled numbers differ from the recomputation")
)
