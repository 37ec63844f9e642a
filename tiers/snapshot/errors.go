package snapshot

import "errors"

// ErrDecl wraps a malformed Job declaration; the message names the field.
var ErrDecl = errors.New("invalid snapshot job")
