package stats

import "errors"

// ErrQuery: a query the caller got wrong (an unknown sort, a bad time, weights that do
// not fit); the HTTP surface answers 400.
var ErrQuery = errors.New("invalid query")
