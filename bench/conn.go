package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// conn is one lane's HTTP/1.1 connection to POST /collect: a request is one write of a
// prebuilt head and the body, an answer is read into a reused buffer and parsed for its
// status, its body and whether the server keeps the connection. That is all the load
// needs, at a fraction of a general client's cost per request: on two shared cores
// every microsecond the generator takes is the server's.
//
// Nothing is retried: a request that met an error has an unknown fate, and the lane
// books it so. After an error, or an answer that closes the connection, the next
// request dials again.
type conn struct {
	addr    string
	timeout time.Duration // of a dial; a request has the lane's watchdog
	nc      net.Conn
	live    *atomic.Pointer[net.Conn] // the connection, for the watchdog
	// idleSince is the run clock when the last answer came; the lane sets it.
	idleSince time.Duration

	head []byte // "POST /collect HTTP/1.1\r\n...Content-Length: "
	wbuf []byte
	rbuf []byte
	r, w int // rbuf[r:w] is read and not yet parsed

	ans answer // the last answer; its body aliases rbuf until the next request
}

// answer is the part of an HTTP answer the load generator reads.
type answer struct {
	status int
	body   []byte
	close  bool // the server closes the connection after it
}

// maxIdle is how long a connection may sit unused before the lane dials a fresh one,
// rather than race a server that closes idle connections (as fasthttp's client did).
const maxIdle = time.Second

// maxAnswer bounds an answer's head and body; /collect answers are a few hundred bytes.
const maxAnswer = 1 << 20

var (
	// errConnClosed: the server closed the connection before the answer was complete.
	errConnClosed = errors.New("the server closed the connection")
	// errBadAnswer: what came back is not an HTTP/1.1 answer this client reads.
	errBadAnswer = errors.New("malformed HTTP answer")
)

func newConn(addr, host, path, contentType, userAgent string, timeout time.Duration, live *atomic.Pointer[net.Conn]) *conn {
	head := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nUser-Agent: %s\r\nContent-Length: ",
		path, host, contentType, userAgent)
	return &conn{addr: addr, timeout: timeout, live: live, head: head, rbuf: make([]byte, 4096)}
}

// do sends body and reads the answer into c.ans. now is the run clock at the send.
func (c *conn) do(body []byte, now time.Duration) error {
	if c.nc != nil && now-c.idleSince > maxIdle {
		c.close()
	}
	if c.nc == nil {
		d := net.Dialer{Timeout: c.timeout}
		nc, err := d.Dial("tcp", c.addr)
		if err != nil {
			return err
		}
		c.nc, c.r, c.w = nc, 0, 0
		c.live.Store(&nc)
	}
	if c.r != c.w { // bytes nobody asked for: the stream is out of step, start afresh
		c.close()
		return c.do(body, now)
	}
	c.request(body)
	if _, err := c.nc.Write(c.wbuf); err != nil {
		c.close()
		return err
	}
	if err := c.read(); err != nil {
		c.close()
		return err
	}
	if c.ans.close {
		c.close()
	}
	return nil
}

// request renders the request carrying body into wbuf, and empties the read buffer.
func (c *conn) request(body []byte) {
	c.r, c.w = 0, 0
	c.wbuf = strconv.AppendInt(append(c.wbuf[:0], c.head...), int64(len(body)), 10)
	c.wbuf = append(append(c.wbuf, "\r\n\r\n"...), body...)
}

func (c *conn) close() {
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

// read reads until an answer is whole.
func (c *conn) read() error {
	for {
		if ok, err := c.parse(false); ok || err != nil {
			return err
		}
		if err := c.room(); err != nil {
			return err
		}
		n, err := c.nc.Read(c.rbuf[c.w:])
		c.w += n
		if errors.Is(err, io.EOF) {
			_, err = c.parse(true)
			return err
		}
		if err != nil {
			return err
		}
	}
}

// room makes room to read into after rbuf[w], moving what is unread to the front or
// growing the buffer.
func (c *conn) room() error {
	switch {
	case c.w < len(c.rbuf):
	case c.r > 0:
		c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
		c.r = 0
	case len(c.rbuf) >= maxAnswer+16<<10:
		return fmt.Errorf("%w: over %d bytes", errBadAnswer, maxAnswer)
	default:
		buf := make([]byte, 2*len(c.rbuf))
		copy(buf, c.rbuf[:c.w])
		c.rbuf = buf
	}
	return nil
}

// parse reads an answer from rbuf[r:w] into c.ans, skipping interim (1xx) ones, and
// reports whether it was whole; eof: nothing more will come, so a partial answer is an
// error. A chunked body is joined in place.
func (c *conn) parse(eof bool) (bool, error) {
	for {
		var h head
		n, err := parseHead(c.rbuf[c.r:c.w], &h)
		if err != nil {
			return false, err
		}
		if n == 0 {
			if eof {
				return false, errConnClosed
			}
			return false, nil
		}
		rest := c.rbuf[c.r+n : c.w]
		ans := answer{status: h.status, close: h.close}
		switch {
		case h.status < 200:
			c.r += n
			continue
		case h.status == 204 || h.status == 304:
		case h.chunked:
			m, size, err := dechunk(rest)
			if err != nil {
				return false, err
			}
			if m == 0 {
				if eof {
					return false, errConnClosed
				}
				return false, nil
			}
			ans.body, n = rest[:size], n+m
		case h.length >= 0:
			if h.length > maxAnswer {
				return false, fmt.Errorf("%w: a body of %d bytes", errBadAnswer, h.length)
			}
			if len(rest) < h.length {
				if eof {
					return false, errConnClosed
				}
				return false, nil
			}
			ans.body, n = rest[:h.length], n+h.length
		default: // the body runs to the end of the connection
			if !eof {
				return false, nil
			}
			ans.body, ans.close, n = rest, true, n+len(rest)
		}
		c.r += n
		c.ans = ans
		return true, nil
	}
}

// dechunk reads a chunked body at the start of b. When it is whole, it joins the
// chunks at the start of b and returns how many bytes of b the body took, chunked, and
// its size joined; m is 0 while it is not whole.
func dechunk(b []byte) (m, size int, err error) {
	// First see that it is whole, then join it: a partial body stays as it came.
	pos := 0
	for {
		i := bytes.Index(b[pos:], crlf)
		if i < 0 {
			if len(b)-pos > 64 {
				return 0, 0, fmt.Errorf("%w: chunk size line", errBadAnswer)
			}
			return 0, 0, nil
		}
		line := b[pos : pos+i]
		if j := bytes.IndexByte(line, ';'); j >= 0 {
			line = line[:j]
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 32)
		if err != nil || size+int(n) > maxAnswer {
			return 0, 0, fmt.Errorf("%w: chunk size %.20q", errBadAnswer, line)
		}
		pos += i + 2
		if n == 0 {
			break
		}
		if len(b)-pos < int(n)+2 {
			return 0, 0, nil
		}
		if !bytes.Equal(b[pos+int(n):pos+int(n)+2], crlf) {
			return 0, 0, fmt.Errorf("%w: chunk not ended by CRLF", errBadAnswer)
		}
		size += int(n)
		pos += int(n) + 2
	}
	for { // trailers, up to an empty line
		i := bytes.Index(b[pos:], crlf)
		if i < 0 {
			if len(b)-pos > 16<<10 {
				return 0, 0, fmt.Errorf("%w: trailers over 16 KiB", errBadAnswer)
			}
			return 0, 0, nil
		}
		pos += i + 2
		if i == 0 {
			break
		}
	}
	m, size = pos, 0
	for pos = 0; ; {
		i := bytes.Index(b[pos:], crlf)
		line := b[pos : pos+i]
		if j := bytes.IndexByte(line, ';'); j >= 0 {
			line = line[:j]
		}
		n, _ := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 32)
		pos += i + 2
		if n == 0 {
			return m, size, nil
		}
		size += copy(b[size:], b[pos:pos+int(n)])
		pos += int(n) + 2
	}
}

var crlf = []byte("\r\n")

// head is what parseHead reads from an answer's status line and header.
type head struct {
	status  int
	length  int // Content-Length; -1: none
	chunked bool
	close   bool
}

// parseHead parses the status line and header at the start of b. It returns the head's
// length, or 0 when b does not hold all of it yet.
func parseHead(b []byte, h *head) (int, error) {
	end := bytes.Index(b, crlfcrlf)
	if end < 0 {
		if len(b) > 16<<10 {
			return 0, fmt.Errorf("%w: a head over 16 KiB", errBadAnswer)
		}
		return 0, nil
	}
	*h = head{length: -1}
	lines := b[:end+2]
	i := bytes.Index(lines, crlf)
	line := lines[:i]
	lines = lines[i+2:]
	// HTTP/1.x NNN[ reason]
	if len(line) < 12 || !bytes.HasPrefix(line, httpSlash1) || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
		return 0, fmt.Errorf("%w: status line %.40q", errBadAnswer, line)
	}
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("%w: status line %.40q", errBadAnswer, line)
		}
		h.status = h.status*10 + int(d-'0')
	}
	if h.status < 100 {
		return 0, fmt.Errorf("%w: status %d", errBadAnswer, h.status)
	}
	h.close = line[7] == '0' // HTTP/1.0 closes unless told otherwise
	for len(lines) > 0 {
		i := bytes.Index(lines, crlf)
		line, lines = lines[:i], lines[i+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return 0, fmt.Errorf("%w: header line %.40q", errBadAnswer, line)
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, contentLength):
			n, ok := atoi(value)
			if !ok || (h.length >= 0 && h.length != n) {
				return 0, fmt.Errorf("%w: Content-Length %.20q", errBadAnswer, value)
			}
			h.length = n
		case bytes.EqualFold(name, transferEncoding):
			if !bytes.EqualFold(value, chunked) {
				return 0, fmt.Errorf("%w: Transfer-Encoding %.20q", errBadAnswer, value)
			}
			h.chunked = true
		case bytes.EqualFold(name, connection):
			switch {
			case bytes.EqualFold(value, closeToken):
				h.close = true
			case bytes.EqualFold(value, keepAlive):
				h.close = false
			}
		}
	}
	return end + 4, nil
}

var (
	crlfcrlf         = []byte("\r\n\r\n")
	httpSlash1       = []byte("HTTP/1.")
	contentLength    = []byte("Content-Length")
	transferEncoding = []byte("Transfer-Encoding")
	chunked          = []byte("chunked")
	connection       = []byte("Connection")
	closeToken       = []byte("close")
	keepAlive        = []byte("keep-alive")
)

// atoi reads a non-negative decimal of at most 9 digits.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	n := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int(d-'0')
	}
	return n, true
}
