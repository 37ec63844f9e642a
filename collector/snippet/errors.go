package snippet

import "errors"

// ErrOptions is wrapped by every error New returns for a bad Options value.
var ErrOptions = errors.New("invalid snippet options")

// errMinify says t.js broke one of the conventions minify relies on: a defect in the
// embedded file, found at start.
var errMinify = errors.New("t.js breaks a minify convention")
