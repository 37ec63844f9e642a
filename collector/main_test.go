package collector

import (
	"testing"

	"go.uber.org/goleak"
)

// Serve and ServeBare run fasthttp's accept loop in a goroutine that ends when ctx is
// cancelled and the server has shut down; the tests' buffers stop their flushers. Two
// goroutines of fasthttp's own are not the collector's to stop: the clock that refreshes
// the Date header, started once per process and never stopped, and each server's
// idle-worker cleaner, which sleeps MaxIdleWorkerDuration (10 s) before it sees that
// Shutdown stopped its pool, and then ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}
