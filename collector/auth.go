package collector

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Private surfaces take the API token in one of two ways: an API caller sends
// `Authorization: Bearer TOKEN`; a browser signs in once at /signin and then sends a
// session cookie. A token is never taken from a URL, where it would end up in history,
// access logs and Referer headers.
//
// The cookie holds no token. It is an expiry and a random nonce, signed with HMAC-SHA256
// under a key derived from the token, so that:
//   - the token cannot be read back from a browser's cookie jar;
//   - every node serving with the same token accepts it (several collectors behind one
//     load balancer), and a restart does not sign everyone out;
//   - changing the token ends every session at once;
//   - a stolen cookie stops working at its expiry, unlike the token it stands for.
//
// Signing out clears the cookie and revokes its nonce in this process until it expires;
// another node, or this one after a restart, would still take a copy of the cookie made
// before the sign-out, until its expiry.

// SessionCookie is the sign-in cookie's name, for the pages behind the sign-in that
// offer to sign out.
const SessionCookie = "rung_session"

// sessionTTL is how long a sign-in lasts.
const sessionTTL = 12 * time.Hour

// unauthorizedMsg is the answer to an API caller without valid credentials, the same on
// every private path.
const unauthorizedMsg = "missing or wrong API token: send Authorization: Bearer TOKEN, or sign in at /signin"

// session layout: expiry (unix seconds, 8 bytes) | nonce (16 bytes) | HMAC (32 bytes).
const (
	sessionPayload = 8 + 16
	sessionLen     = sessionPayload + sha256.Size
)

// auth checks credentials for the private surfaces. The zero token means none are
// needed. It is safe for concurrent use.
type auth struct {
	sum    [sha256.Size]byte // of the token: compared in constant time, whatever the lengths
	key    []byte            // signs session cookies
	open   bool              // no token: private surfaces are open
	secure bool              // always mark the cookie Secure
	now    func() time.Time

	mu      sync.Mutex
	revoked map[[16]byte]int64 // signed-out nonces, until their expiry (unix seconds)
}

func newAuth(token string, secure bool, now func() time.Time) *auth {
	a := &auth{open: token == "", secure: secure, now: now, revoked: make(map[[16]byte]int64)}
	a.sum = sha256.Sum256([]byte(token))
	m := hmac.New(sha256.New, []byte(token))
	m.Write([]byte("rung sign-in cookie v1"))
	a.key = m.Sum(nil)
	return a
}

// tokenOK reports whether t is the token, in time independent of where they differ and
// of their lengths.
func (a *auth) tokenOK(t []byte) bool {
	sum := sha256.Sum256(t)
	return subtle.ConstantTimeCompare(sum[:], a.sum[:]) == 1
}

// allowed reports whether the request carries the token (Bearer) or a valid session
// cookie.
func (a *auth) allowed(ctx *fasthttp.RequestCtx) bool {
	if a.open {
		return true
	}
	if t, ok := bytes.CutPrefix(ctx.Request.Header.Peek("Authorization"), []byte("Bearer ")); ok && a.tokenOK(t) {
		return true
	}
	_, _, ok := a.session(ctx.Request.Header.Cookie(SessionCookie))
	return ok
}

// newSession makes a signed cookie value that expires after sessionTTL.
func (a *auth) newSession() string {
	var b [sessionLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(a.now().Add(sessionTTL).Unix()))
	rand.Read(b[8:sessionPayload])
	a.sign(b[:sessionPayload], b[sessionPayload:sessionPayload]) // appends the MAC in place
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *auth) sign(payload, dst []byte) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write(payload)
	return m.Sum(dst)
}

// session checks a cookie value: well formed, signed with this token's key, not
// expired, not signed out. It returns its nonce and expiry (unix seconds).
func (a *auth) session(v []byte) (nonce [16]byte, exp int64, ok bool) {
	// Strict: the last character's unused bits must be zero, so no two values decode to
	// the same session.
	enc := base64.RawURLEncoding.Strict()
	var b [sessionLen]byte
	if enc.DecodedLen(len(v)) != sessionLen {
		return nonce, 0, false
	}
	n, err := enc.Decode(b[:], v)
	if err != nil || n != sessionLen {
		return nonce, 0, false
	}
	var mac [sha256.Size]byte
	if !hmac.Equal(a.sign(b[:sessionPayload], mac[:0]), b[sessionPayload:]) {
		return nonce, 0, false
	}
	exp = int64(binary.BigEndian.Uint64(b[:8]))
	if a.now().Unix() >= exp {
		return nonce, 0, false
	}
	copy(nonce[:], b[8:sessionPayload])
	a.mu.Lock()
	_, gone := a.revoked[nonce]
	a.mu.Unlock()
	return nonce, exp, !gone
}

// revoke signs a session out in this process until it would have expired. Only valid
// sessions are revoked, so the set grows with sign-outs by people holding the token.
func (a *auth) revoke(v []byte) {
	nonce, exp, ok := a.session(v)
	if !ok {
		return
	}
	now := a.now().Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	for n, e := range a.revoked {
		if e <= now {
			delete(a.revoked, n)
		}
	}
	a.revoked[nonce] = exp
}

// setCookie writes the session cookie (value "" clears it). It is HttpOnly (no script
// reads it), SameSite=Strict (no other site's page or link sends it, which is what keeps
// cross-site requests off the private surfaces), and Secure when the request came over
// HTTPS: directly, through a proxy that says so in X-Forwarded-Proto or Forwarded, or
// always with --secure-cookie. Honouring the proxy headers cannot weaken anything: a
// client that lies gets a cookie its browser will only send over HTTPS.
func (a *auth) setCookie(ctx *fasthttp.RequestCtx, value string) {
	c := fasthttp.AcquireCookie()
	defer fasthttp.ReleaseCookie(c)
	c.SetKey(SessionCookie)
	c.SetValue(value)
	c.SetPath("/")
	c.SetHTTPOnly(true)
	c.SetSameSite(fasthttp.CookieSameSiteStrictMode)
	c.SetSecure(a.secure || overHTTPS(ctx))
	if value == "" {
		c.SetMaxAge(-1) // Max-Age=0: gone now
	} else {
		c.SetMaxAge(int(sessionTTL / time.Second))
	}
	ctx.Response.Header.SetCookie(c)
}

func overHTTPS(ctx *fasthttp.RequestCtx) bool {
	if ctx.IsTLS() {
		return true
	}
	h := &ctx.Request.Header
	if proto := h.Peek("X-Forwarded-Proto"); len(proto) > 0 {
		first, _, _ := bytes.Cut(proto, []byte(","))
		return bytes.EqualFold(bytes.TrimSpace(first), []byte("https"))
	}
	return bytes.Contains(bytes.ToLower(h.Peek("Forwarded")), []byte("proto=https"))
}

// private guards a private surface: it reports whether the request may go on, and
// answers it when not. A browser opening a page (GET or HEAD, asking for HTML) is sent
// to the sign-in page, which brings it back; anything else gets 401 with
// `WWW-Authenticate: Bearer realm="rung"` and a JSON error. The answer is the same on
// every private path, /metrics as much as the stats API.
func (s *Server) private(ctx *fasthttp.RequestCtx) bool {
	if s.auth.allowed(ctx) {
		return true
	}
	s.bodyErrs["unauthorized"].Inc()
	ctx.Response.Header.Set("Cache-Control", "no-store")
	if (ctx.IsGet() || ctx.IsHead()) && bytes.Contains(ctx.Request.Header.Peek("Accept"), []byte("text/html")) {
		seeOther(ctx, "/signin?next="+url.QueryEscape(returnTo(ctx)))
		return false
	}
	ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="rung"`)
	answerError(ctx, fasthttp.StatusUnauthorized, unauthorizedMsg)
	return false
}

// returnTo is where sign-in sends the browser back to: the request's path as sent
// (still escaped) and query, without a token parameter (tokens in URLs are not taken,
// and not carried on either).
func returnTo(ctx *fasthttp.RequestCtx) string {
	u := string(ctx.URI().PathOriginal())
	q, err := url.ParseQuery(string(ctx.QueryArgs().QueryString()))
	if err == nil {
		q.Del("token")
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
	}
	return u
}

// localPath returns next when it is a path on this server, else "/": sign-in never
// redirects off-site (an open redirect would let a link to rung's sign-in page send
// people anywhere).
func localPath(next string) string {
	if len(next) > 2048 || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.HasPrefix(next, "/\\") || strings.ContainsFunc(next, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}

// seeOther answers 303 with a relative Location: the browser resolves it against the
// URL it used, which a proxy in front may have changed (fasthttp's Redirect would make it
// absolute with the scheme and host rung saw).
func seeOther(ctx *fasthttp.RequestCtx, loc string) {
	ctx.Response.Header.Set("Location", loc)
	ctx.SetStatusCode(fasthttp.StatusSeeOther)
}
