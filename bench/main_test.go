package bench

import (
	"testing"

	"go.uber.org/goleak"
)

// Run's ticker, senders and epoll loops end before it returns (the load tests also check
// that each on its own with goleak.VerifyNone).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
