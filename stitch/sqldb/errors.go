package sqldb

import "errors"

// ErrDialect is returned for a dialect name that is neither "postgres" nor "sqlite".
var ErrDialect = errors.New("unknown SQL dialect")

// ErrIdent is returned for a table or column name that is not a plain SQL identifier.
var ErrIdent = errors.New("not a plain SQL identifier")
