// Package testport picks the ports of the servers tests start as processes and
// restart (ClickHouse, NATS): helpers for test-support packages, which may not import
// internal/harness.
package testport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Stable picks a free port below the kernel's ephemeral range, the range outgoing
// connections take their local ports from. A port chosen here is bound by a server a
// moment later, and again after an outage the test makes; in the ephemeral range a
// client's connection could take it meanwhile, and the server would run without
// listening on it (clickhouse-server does) or not start.
func Stable(t testing.TB) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				low = n
			}
		}
	}
	from := max(1024, low-12000)
	for range 200 {
		p := from + rand.IntN(low-from)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ln.Close()
		return p
	}
	t.Fatalf("no free port in [%d, %d)", from, low)
	return 0
}
