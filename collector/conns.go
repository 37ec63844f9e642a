package collector

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// capped is the listener under the HTTP server that holds the connection caps
// (Config.MaxConns, Config.MaxConnsPerIP). fasthttp has both caps too, but answers the
// connections over them in plain text; here they are answered in the collector's JSON
// shape, counted, and closed, and the caller's Accept never sees them.
type capped struct {
	net.Listener
	s          *Server
	max, perIP int
	mu         sync.Mutex
	open       int
	byIP       map[netip.Addr]int
}

// capConns wraps ln with the configured caps.
func (s *Server) capConns(ln net.Listener) net.Listener {
	return &capped{Listener: ln, s: s, max: s.cfg.MaxConns, perIP: s.cfg.MaxConnsPerIP, byIP: make(map[netip.Addr]int)}
}

func (l *capped) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		var ip netip.Addr
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			ip = a.AddrPort().Addr().Unmap()
		}
		status := l.admit(ip)
		if status == 0 {
			return &cappedConn{Conn: c, l: l, ip: ip}, nil
		}
		l.refuse(c, status)
	}
}

// admit takes a place for a connection from ip, or names the status that refuses it.
func (l *capped) admit(ip netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.max {
		return fasthttp.StatusServiceUnavailable
	}
	if l.perIP > 0 && ip.IsValid() {
		if l.byIP[ip] >= l.perIP {
			return fasthttp.StatusTooManyRequests
		}
		l.byIP[ip]++
	}
	l.open++
	return 0
}

func (l *capped) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.perIP > 0 && ip.IsValid() {
		if l.byIP[ip]--; l.byIP[ip] <= 0 {
			delete(l.byIP, ip)
		}
	}
}

// refuse answers a connection over a cap and closes it. The answer is small enough for
// a new socket's send buffer, and the deadline keeps a client that never reads from
// holding up the accept loop.
func (l *capped) refuse(c net.Conn, status int) {
	reason, msg := "max_conns", "too many connections, retry later"
	if status == fasthttp.StatusTooManyRequests {
		reason, msg = "max_conns_per_ip", "too many connections from this address"
	}
	l.s.bodyErrs[reason].Inc()
	l.s.requests[status].Inc()
	body := errorBody(msg)
	c.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		status, fasthttp.StatusMessage(status), len(body), body)
	c.Close()
}

// cappedConn gives its place back when it is closed.
type cappedConn struct {
	net.Conn
	l    *capped
	ip   netip.Addr
	once sync.Once
}

func (c *cappedConn) Close() error {
	c.once.Do(func() { c.l.release(c.ip) })
	return c.Conn.Close()
}
