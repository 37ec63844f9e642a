package preagg

import (
	"testing"

	"go.uber.org/goleak"
)

// The sessionizer starts no goroutine, and the tests' buffers and stores stop theirs.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
