package main

import (
	"fmt"
	"net"
)

// privateSurfaces names what serve keeps behind --api-token or on --admin-listen.
const privateSurfaces = "the dashboard, the stats API, /metrics, the attribution lookup, the quarantine and pprof"

// privateAddr is where serve answers its private surfaces: on --admin-listen when it is
// set, else on --listen.
func (c *serveConfig) privateAddr() (flag, addr string) {
	if c.AdminListen != "" {
		return "--admin-listen", c.AdminListen
	}
	return "--listen", c.Listen
}

// privateOpen reports whether the private surfaces would answer anyone beyond this
// machine: no token, on an address other than loopback.
func (c *serveConfig) privateOpen() bool {
	_, addr := c.privateAddr()
	return c.APIToken == "" && !loopback(addr)
}

// checkPrivate is serve's private-by-default rule: private surfaces open beyond
// loopback are refused, unless --insecure-public-stats insists.
func (c *serveConfig) checkPrivate() error {
	flag, addr := c.privateAddr()
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil // a bad address is reported as such
	}
	if !c.privateOpen() || c.InsecurePublic {
		return nil
	}
	return fmt.Errorf("%s %s: %s would be open to anyone who can reach this address; "+
		"set --api-token (or RUNG_API_TOKEN), or serve them on --admin-listen 127.0.0.1:PORT, "+
		"or pass --insecure-public-stats to serve them open anyway", flag, addr, privateSurfaces)
}

// loopback reports whether addr (host:port) listens on loopback only. An empty host
// listens on every interface; a host name other than localhost may resolve anywhere.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
