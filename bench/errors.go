package bench

import "errors"

var (
	// ErrNotLoopback: the target resolves to an address outside 127.0.0.0/8 and ::1, and
	// the run was not told that is intended.
	ErrNotLoopback = errors.New("target is not a loopback address")
	// ErrConfig: a setting that cannot work.
	ErrConfig = errors.New("invalid bench configuration")
	// ErrUnauthorized: the server answered 401 or 403. The run stops at once: every
	// request after would be refused the same way, and so would every wait for a result.
	ErrUnauthorized = errors.New("refused by the server")
)
