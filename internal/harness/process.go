package harness

import (
	"net"
	"strings"
	"sync"
	"testing"
)

// FreeAddr returns a 127.0.0.1 address with a port nobody listens on right now, for a
// server the test starts as a process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Output collects what a process writes to its stdout and stderr. exec.Cmd copies each
// stream from a goroutine of its own, so Write and String may run at the same time.
type Output struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
