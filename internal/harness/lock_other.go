//go:build !unix

package harness

// lockFile does not lock where flock is missing: processes may then build the same
// binary side by side, which costs time but not correctness (each renames its own
// complete build into place).
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
