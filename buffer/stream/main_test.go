package stream

import (
	"testing"

	"go.uber.org/goleak"
)

// The Publisher's sends and the Consumer's fetchers end with Close and Run; the tests
// close every NATS connection they open, whose reader and flusher end with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
