package bench

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// scripted is a TCP server on loopback that reads each request whole and answers with
// the next of its scripted byte strings, written in pieces of at most piece bytes so
// the client meets answers split across reads. An answer ending in "<close>" is sent
// without that marker and the connection closed after it.
func scripted(t *testing.T, piece int, answers ...string) (addr string, reqs <-chan *http.Request) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *http.Request, len(answers))
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		var c net.Conn
		var br *bufio.Reader
		for i := 0; i < len(answers); {
			a := answers[i]
			if c == nil {
				if c, err = ln.Accept(); err != nil {
					return
				}
				br = bufio.NewReader(c)
			}
			req, err := http.ReadRequest(br)
			if err != nil { // the client closed this one: its next request comes on another
				c.Close()
				c = nil
				continue
			}
			i++
			body, _ := io.ReadAll(req.Body)
			req.Body = io.NopCloser(strings.NewReader(string(body)))
			got <- req
			a, closeAfter := strings.CutSuffix(a, "<close>")
			for len(a) > 0 {
				n := min(piece, len(a))
				c.Write([]byte(a[:n]))
				a = a[n:]
				time.Sleep(time.Millisecond)
			}
			if closeAfter {
				c.Close()
				c = nil
			}
		}
		if c != nil {
			c.Close()
		}
	}()
	return ln.Addr().String(), got
}

func TestConnAnswers(t *testing.T) {
	const ok = `{"accepted":1,"rejected":0}`
	for _, c := range []struct {
		name   string
		answer string
		status int
		body   string
		close  bool
		err    error // nil: none; errAny: some error
	}{
		{"content length", "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n" + ok, 202, ok, false, nil},
		{"no reason", "HTTP/1.1 202\r\ncontent-length: 27\r\n\r\n" + ok, 202, ok, false, nil},
		{"empty body", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", 503, "", false, nil},
		{"connection close", "HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}<close>", 429, "{}", true, nil},
		{"HTTP/1.0", "HTTP/1.0 202 Accepted\r\nContent-Length: 2\r\n\r\n{}<close>", 202, "{}", true, nil},
		{"HTTP/1.0 keep-alive", "HTTP/1.0 202 Accepted\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n{}", 202, "{}", false, nil},
		{"chunked", "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"ac\r\n17;x=y\r\ncepted\":1,\"rejected\":0}\r\n0\r\nTrailer: a\r\n\r\n", 202, ok, false, nil},
		{"to the end", "HTTP/1.1 400 Bad Request\r\n\r\n{\"error\":\"bad json\"}<close>", 400, `{"error":"bad json"}`, true, nil},
		{"interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 27\r\n\r\n" + ok, 202, ok, false, nil},
		{"closed before answering", "<close>", 0, "", false, errConnClosed},
		{"closed mid-body", "HTTP/1.1 202 Accepted\r\nContent-Length: 27\r\n\r\n{\"acc<close>", 0, "", false, errConnClosed},
		{"not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n", 0, "", false, errBadAnswer},
		{"bad length", "HTTP/1.1 202 Accepted\r\nContent-Length: -1\r\n\r\n", 0, "", false, errBadAnswer},
		{"two lengths", "HTTP/1.1 202 Accepted\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}", 0, "", false, errBadAnswer},
		{"bad chunk", "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, "", false, errBadAnswer},
		{"other encoding", "HTTP/1.1 202 Accepted\r\nTransfer-Encoding: gzip\r\n\r\n", 0, "", false, errBadAnswer},
		{"header line without a colon", "HTTP/1.1 202 Accepted\r\nnonsense\r\n\r\n", 0, "", false, errBadAnswer},
	} {
		for _, piece := range []int{1 << 20, 5} {
			addr, reqs := scripted(t, piece, c.answer)
			var live atomic.Pointer[net.Conn]
			cn := newConn(addr, "bench.test", "/collect", "text/plain;charset=UTF-8", "ua", time.Second, &live)
			err := cn.do([]byte(`{"type":"pageview"}`), 0)
			switch {
			case c.err == nil && err != nil:
				t.Errorf("%s (pieces of %d): %v", c.name, piece, err)
			case c.err != nil && !errors.Is(err, c.err):
				t.Errorf("%s (pieces of %d): error %v, want %v", c.name, piece, err, c.err)
			case c.err == nil && (cn.ans.status != c.status || string(cn.ans.body) != c.body || cn.ans.close != c.close):
				t.Errorf("%s (pieces of %d): status %d, body %q, close %v; want %d, %q, %v",
					c.name, piece, cn.ans.status, cn.ans.body, cn.ans.close, c.status, c.body, c.close)
			}
			if (err != nil || c.close) && cn.nc != nil {
				t.Errorf("%s: the connection stays open after an error or a close", c.name)
			}
			if req := <-reqs; req.Method != "POST" || req.URL.Path != "/collect" || req.Host != "bench.test" ||
				req.Header.Get("Content-Type") != "text/plain;charset=UTF-8" || req.ContentLength != 19 {
				t.Errorf("%s: the server read %s %s host %q, %q, length %d", c.name, req.Method, req.URL, req.Host,
					req.Header.Get("Content-Type"), req.ContentLength)
			}
			cn.close()
		}
	}
}

// TestConnKeepAlive: answers come back on one connection, in order, however large; after
// an answer that closes it, or an idle spell, the next request dials again.
func TestConnKeepAlive(t *testing.T) {
	big := strings.Repeat("x", 100_000) // more than the read buffer
	answer := func(body string) string {
		return "HTTP/1.1 202 Accepted\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	addr, reqs := scripted(t, 1<<20, answer("one"), answer(big), "HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 5\r\n\r\nthree<close>", answer("four"), answer("five"))
	var live atomic.Pointer[net.Conn]
	cn := newConn(addr, "bench.test", "/collect", "text/plain", "ua", time.Second, &live)
	defer cn.close()
	var first net.Conn
	for i, want := range []string{"one", big, "three", "four", "five"} {
		now := time.Duration(i) * time.Millisecond
		if i == 4 {
			now = cn.idleSince + maxIdle + time.Millisecond // idle too long: a fresh connection
		}
		body := strings.Repeat("b", i*1000)
		if err := cn.do([]byte(body), now); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if string(cn.ans.body) != want {
			t.Fatalf("request %d: answer of %d bytes, want %d", i, len(cn.ans.body), len(want))
		}
		cn.idleSince = now
		req := <-reqs
		b, _ := io.ReadAll(req.Body)
		if string(b) != body {
			t.Fatalf("request %d: the server read a body of %d bytes, want %d", i, len(b), len(body))
		}
		switch c := *live.Load(); {
		case i == 0:
			first = c
		case i < 3 && c != first:
			t.Errorf("request %d: a new connection for a kept-alive one", i)
		case i >= 3 && c == first:
			t.Errorf("request %d: the closed connection reused", i)
		}
	}
}

func FuzzParseHead(f *testing.F) {
	f.Add([]byte("HTTP/1.1 202 Accepted\r\nContent-Length: 27\r\n\r\n"))
	f.Add([]byte("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 100\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 2x2 Accepted\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h head
		n, err := parseHead(b, &h)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with a head of %d bytes", err, n)
			}
			return
		}
		if n == 0 {
			return
		}
		if n > len(b) || string(b[n-4:n]) != "\r\n\r\n" {
			t.Fatalf("head of %d bytes in %d", n, len(b))
		}
		if h.status < 100 || h.status > 999 || h.length < -1 || (h.length >= 0 && h.length > 999_999_999) {
			t.Fatalf("head %+v", h)
		}
	})
}

// FuzzDechunk: a chunked body dechunk calls whole is the body net/http reads from it.
func FuzzDechunk(f *testing.F) {
	f.Add([]byte("4\r\nabcd\r\n3;x=y\r\nefg\r\n0\r\n\r\n"))
	f.Add([]byte("0\r\nTrailer: a\r\n\r\n"))
	f.Add([]byte("5\r\nab"))
	f.Add([]byte("zz\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		m, size, err := dechunk(b)
		if err != nil || m == 0 {
			if !bytes.Equal(b, orig) {
				t.Fatalf("a partial or bad body was changed")
			}
			return
		}
		want, rerr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(orig[:m])))
		if rerr != nil {
			return // net/http is stricter about some size lines (spaces, extensions)
		}
		if m > len(b) || !bytes.Equal(b[:size], want) {
			t.Fatalf("dechunk %q = %q (%d of %d bytes), net/http reads %q", orig, b[:size], m, len(b), want)
		}
	})
}
