package bench

import (
	"strconv"
	"testing"
	"time"
)

// The per-request work of the load generator besides the kernel's: making the next
// request (the visitors' signals, rendered into the lane's body), reading the answer,
// and booking it in the ledger. allocs/op must stay 0: on two shared cores the
// generator's every microsecond is taken from the server under test.

// benchLane is a lane of a run of one connection, with no network.
func benchLane(b *testing.B, batch int) *lane {
	cfg := Config{Target: "http://127.0.0.1:1", Duration: time.Second, Connections: 1, Batch: batch, Model: DefaultModel(1, "benchrun")}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	r := &runner{cfg: &cfg}
	l := newLane(r, 0, "127.0.0.1:1", "127.0.0.1:1")
	r.lanes = []*lane{l}
	return l
}

// BenchmarkRequest builds a request and books its answer, all accepted: the client's
// work per request, but for the HTTP exchange.
func BenchmarkRequest(b *testing.B) {
	for _, batch := range []int{1, 50} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			l := benchLane(b, batch)
			l.http.ans = answer{status: 202, body: []byte(`{"accepted":` + strconv.Itoa(batch) + `,"rejected":0}`)}
			now := time.Duration(0)
			var bytes int
			b.ReportAllocs()
			for b.Loop() {
				now += 2 * time.Millisecond // past every visitor's hold (see build)
				if l.build(now, false) == 0 {
					b.Fatal("nothing to send")
				}
				bytes += len(l.body)
				l.settle(nil, now)
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "body-bytes/op")
		})
	}
}

// BenchmarkAnswer reads a 202 answer, as rung's fasthttp server sends it, from the
// connection's buffer: the status line, the head, the body.
func BenchmarkAnswer(b *testing.B) {
	raw := []byte("HTTP/1.1 202 Accepted\r\nDate: Sun, 06 Dec 2026 00:00:00 GMT\r\nContent-Type: application/json\r\nContent-Length: 28\r\n\r\n{\"accepted\":1,\"rejected\":0}\n")
	c := newConn("127.0.0.1:1", "x", "/collect", "text/plain", "ua", time.Second, nil)
	b.ReportAllocs()
	for b.Loop() {
		c.r, c.w = 0, copy(c.rbuf, raw)
		if err := c.read(); err != nil || c.ans.status != 202 || len(c.ans.body) != 28 {
			b.Fatalf("%v %+v", err, c.ans)
		}
	}
}
