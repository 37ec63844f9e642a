//go:build race

package harness

// Race is true when the tests are built with -race. The race detector allocates on its
// own account and sync.Pool drops items at random under it, so allocation counts are
// meaningless there: allocation tests skip themselves when Race is true (they run in
// the plain `go test`).
const Race = true
