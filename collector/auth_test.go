package collector

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/rungdev/rung/schemas"
)

const testToken = "s3cret-token"

// authServer is a collector with a private mount at each kind of prefix, and a public
// one.
func authServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	ok := func(body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	}
	return New(cfg, reg, discard{}, func(context.Context) error { return nil }, metrics.NewSet(),
		slog.New(slog.NewTextHandler(io.Discard, nil)),
		Mount{Prefix: "/v1/stats/", Handler: ok("stats"), Private: true},
		Mount{Prefix: "/", Exact: true, Handler: ok("dashboard"), Private: true},
		Mount{Prefix: "/referrers", Handler: ok("referrers"), Private: true},
		Mount{Prefix: "/place", Handler: ok("place")})
}

// do runs one request through h in process. header is name, value pairs.
func do(h fasthttp.RequestHandler, method, uri string, body string, header ...string) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(method)
	ctx.Request.SetRequestURI(uri)
	for i := 0; i+1 < len(header); i += 2 {
		ctx.Request.Header.Set(header[i], header[i+1])
	}
	if body != "" {
		ctx.Request.SetBodyString(body)
	}
	h(&ctx)
	var resp fasthttp.Response
	ctx.Response.CopyTo(&resp)
	return &resp
}

const browserAccept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

// signIn posts the sign-in form and returns the session cookie it set.
func signIn(t *testing.T, h fasthttp.RequestHandler, token string, header ...string) (*fasthttp.Response, *http.Cookie) {
	t.Helper()
	form := url.Values{"token": {token}, "next": {"/v1/stats/x?site=a"}}.Encode()
	resp := do(h, "POST", "/signin", form, append([]string{"Content-Type", "application/x-www-form-urlencoded"}, header...)...)
	raw := resp.Header.PeekCookie(SessionCookie)
	if raw == nil {
		return resp, nil
	}
	c, err := http.ParseSetCookie(string(raw))
	if err != nil {
		t.Fatalf("Set-Cookie %q: %v", raw, err)
	}
	return resp, c
}

// TestPrivateAnswers: without credentials, every private path answers the same (401,
// WWW-Authenticate, the same JSON) to an API caller, and sends a browser to the sign-in
// page; a token in the URL is not taken; the Bearer token and the session cookie are.
func TestPrivateAnswers(t *testing.T) {
	for _, admin := range []bool{false, true} {
		srv := authServer(t, Config{APIToken: testToken, AdminSeparate: admin})
		h := srv.Handler
		if admin {
			h = srv.admin
		}
		_, c := signIn(t, h, testToken)
		if c == nil {
			t.Fatal("signing in set no cookie")
		}
		cookie := c.Name + "=" + c.Value
		for _, path := range []string{"/metrics", "/v1/stats/landing-pages", "/v1/stats/nothing", "/", "/referrers"} {
			for _, tt := range []struct {
				name   string
				uri    string
				header []string
				want   int
			}{
				{"nothing", path, nil, 401},
				{"wrong bearer", path, []string{"Authorization", "Bearer wrong"}, 401},
				{"bearer prefix", path, []string{"Authorization", "Bearer " + testToken[:5]}, 401},
				{"basic", path, []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+testToken))}, 401},
				{"token in URL", path + "?token=" + testToken, nil, 401},
				{"forged cookie", path, []string{"Cookie", SessionCookie + "=" + strings.Repeat("A", 75)}, 401},
				{"the token as cookie", path, []string{"Cookie", SessionCookie + "=" + testToken}, 401},
				{"bearer", path, []string{"Authorization", "Bearer " + testToken}, 200},
				{"cookie", path, []string{"Cookie", cookie}, 200},
			} {
				resp := do(h, "GET", tt.uri, "", tt.header...)
				if resp.StatusCode() != tt.want {
					t.Errorf("admin %v: GET %s with %s: %d, want %d", admin, tt.uri, tt.name, resp.StatusCode(), tt.want)
					continue
				}
				if tt.want != 401 {
					continue
				}
				if got := string(resp.Header.Peek("WWW-Authenticate")); got != `Bearer realm="rung"` {
					t.Errorf("GET %s with %s: WWW-Authenticate %q", tt.uri, tt.name, got)
				}
				if ct, body := string(resp.Header.ContentType()), string(resp.Body()); ct != "application/json" || body != `{"error":"`+unauthorizedMsg+`"}`+"\n" {
					t.Errorf("GET %s with %s: %s %s, want the same JSON error on every path", tt.uri, tt.name, ct, body)
				}
			}
			// A browser opening the page is sent to sign in, and back; no token travels.
			resp := do(h, "GET", path+"?site=a&token="+testToken, "", "Accept", browserAccept)
			loc := string(resp.Header.Peek("Location"))
			if resp.StatusCode() != 303 || loc != "/signin?next="+url.QueryEscape(path+"?site=a") {
				t.Errorf("admin %v: a browser at %s: %d to %q, want 303 to the sign-in page", admin, path, resp.StatusCode(), loc)
			}
			if next := "/signin?next=" + url.QueryEscape(path+"%20x?site=a"); strings.HasPrefix(path, "/v1/stats/") {
				// The way back keeps the path as it was sent, escaped (under a prefix mount).
				if loc := string(do(h, "GET", path+"%20x?site=a", "", "Accept", browserAccept).Header.Peek("Location")); loc != next {
					t.Errorf("a browser at %s%%20x: to %q, want %q", path, loc, next)
				}
			}
		}
		if got := do(h, "GET", "/place", "").StatusCode(); admin == (got != 404) {
			t.Errorf("admin %v: the public /place answers %d", admin, got)
		}
		if admin { // sign-in goes with the private pages, to the admin listener
			for _, path := range []string{"/signin", "/signout", "/metrics", "/"} {
				if got := do(srv.Handler, "GET", path, "", "Authorization", "Bearer "+testToken).StatusCode(); got != 404 {
					t.Errorf("with an admin listener, the public listener answers %s: %d", path, got)
				}
			}
		}
	}
}

// TestSignIn: the form's answers, the cookie's flags, and signing out.
func TestSignIn(t *testing.T) {
	srv := authServer(t, Config{APIToken: testToken})
	h := srv.Handler

	resp := do(h, "GET", "/signin?next=/referrers", "")
	if resp.StatusCode() != 200 || !strings.HasPrefix(string(resp.Header.ContentType()), "text/html") ||
		string(resp.Header.Peek("Content-Security-Policy")) != pageCSP ||
		!strings.Contains(string(resp.Body()), `name="next" value="/referrers"`) {
		t.Fatalf("GET /signin: %d %s CSP %q\n%s", resp.StatusCode(), resp.Header.ContentType(), resp.Header.Peek("Content-Security-Policy"), resp.Body())
	}

	resp, c := signIn(t, h, "wrong")
	if resp.StatusCode() != 401 || c != nil || !strings.Contains(string(resp.Body()), `id="error"`) {
		t.Errorf("a wrong token: %d, cookie %v", resp.StatusCode(), c)
	}

	resp, c = signIn(t, h, testToken)
	if resp.StatusCode() != 303 || string(resp.Header.Peek("Location")) != "/v1/stats/x?site=a" {
		t.Errorf("signed in: %d to %q", resp.StatusCode(), resp.Header.Peek("Location"))
	}
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || c.Path != "/" || c.MaxAge != int(sessionTTL/time.Second) {
		t.Fatalf("the cookie: %+v, want HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP", c)
	}
	if strings.Contains(c.Value, testToken) {
		t.Errorf("the cookie holds the token")
	}
	for _, hdr := range [][]string{{"X-Forwarded-Proto", "https"}, {"Forwarded", "for=1.2.3.4;proto=https"}} {
		if _, c := signIn(t, h, testToken, hdr...); c == nil || !c.Secure {
			t.Errorf("behind a TLS proxy (%s): cookie %+v, want Secure", hdr, c)
		}
	}
	if _, c := signIn(t, authServer(t, Config{APIToken: testToken, SecureCookie: true}).Handler, testToken); c == nil || !c.Secure {
		t.Errorf("with SecureCookie: cookie %+v, want Secure", c)
	}

	// Another server with the same token takes the cookie (several nodes behind one
	// balancer); one with another token does not.
	cookie := []string{"Cookie", c.Name + "=" + c.Value}
	if got := do(authServer(t, Config{APIToken: testToken}).Handler, "GET", "/metrics", "", cookie...).StatusCode(); got != 200 {
		t.Errorf("the same token on another server: %d", got)
	}
	if got := do(authServer(t, Config{APIToken: "another"}).Handler, "GET", "/metrics", "", cookie...).StatusCode(); got != 401 {
		t.Errorf("another token: %d", got)
	}

	if got := do(h, "GET", "/signin", "", cookie...); !strings.Contains(string(got.Body()), `action="/signout"`) {
		t.Errorf("signed in, the sign-in page offers no sign-out")
	}
	resp = do(h, "POST", "/signout", "", cookie...)
	out, err := http.ParseSetCookie(string(resp.Header.PeekCookie(SessionCookie)))
	if resp.StatusCode() != 303 || err != nil || out.MaxAge >= 0 || out.Value != "" {
		t.Errorf("sign out: %d, cookie %+v (%v), want it cleared", resp.StatusCode(), out, err)
	}
	if got := do(h, "GET", "/metrics", "", cookie...).StatusCode(); got != 401 {
		t.Errorf("a signed-out cookie: %d, want 401", got)
	}

	for _, tt := range []struct{ method, ct string }{{"POST", "application/json"}, {"PUT", ""}} {
		if got := do(h, tt.method, "/signin", `{"token":"`+testToken+`"}`, "Content-Type", tt.ct).StatusCode(); got != 415 && got != 405 {
			t.Errorf("%s /signin %s: %d", tt.method, tt.ct, got)
		}
	}
}

// TestNoToken: without a token the private surfaces are open, and the sign-in page
// says there is nothing to sign in to.
func TestNoToken(t *testing.T) {
	h := authServer(t, Config{}).Handler
	if got := do(h, "GET", "/metrics", "").StatusCode(); got != 200 {
		t.Errorf("GET /metrics without a token configured: %d", got)
	}
	if resp := do(h, "GET", "/signin", ""); resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), "No sign-in needed") {
		t.Errorf("GET /signin without a token configured: %d\n%s", resp.StatusCode(), resp.Body())
	}
	if resp, c := signIn(t, h, "anything"); resp.StatusCode() != 303 || c != nil {
		t.Errorf("POST /signin without a token configured: %d, cookie %v", resp.StatusCode(), c)
	}
}

func TestSessionExpires(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newAuth(testToken, false, func() time.Time { return now })
	v := []byte(a.newSession())
	if _, _, ok := a.session(v); !ok {
		t.Fatal("a new session is refused")
	}
	now = now.Add(sessionTTL - time.Second)
	if _, _, ok := a.session(v); !ok {
		t.Error("refused before its expiry")
	}
	now = now.Add(time.Second)
	if _, _, ok := a.session(v); ok {
		t.Error("taken at its expiry")
	}
	now = now.Add(-time.Hour)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range v { // any changed character, the last one's unused bits too: refused
		for _, c := range []byte(alphabet) {
			if c == v[i] {
				continue
			}
			w := append([]byte(nil), v...)
			w[i] = c
			if _, _, ok := a.session(w); ok {
				t.Fatalf("a cookie changed at %d (%q for %q) is taken", i, c, v[i])
			}
		}
	}
}

func TestLocalPath(t *testing.T) {
	for _, tt := range []struct{ next, want string }{
		{"/experiments/x?site=a", "/experiments/x?site=a"},
		{"", "/"}, {"https://evil.example/", "/"}, {"//evil.example/", "/"}, {"/\\evil.example", "/"},
		{"evil", "/"}, {"/a\r\nSet-Cookie: x", "/"}, {"/a b", "/"}, {"/" + strings.Repeat("a", 3000), "/"},
	} {
		if got := localPath(tt.next); got != tt.want {
			t.Errorf("localPath(%q) = %q, want %q", tt.next, got, tt.want)
		}
	}
}

// FuzzSession: no cookie value but one this server signed is taken.
func FuzzSession(f *testing.F) {
	a := newAuth(testToken, false, time.Now)
	f.Add(a.newSession())
	f.Add(strings.Repeat("A", 75))
	f.Add(testToken)
	f.Fuzz(func(t *testing.T, v string) {
		if _, _, ok := a.session([]byte(v)); ok {
			b, err := base64.RawURLEncoding.Strict().DecodeString(v)
			if err != nil || len(b) != sessionLen {
				t.Fatalf("%q taken", v)
			}
		}
	})
}

// TestOpenAPIServed: /openapi.json is public on both listeners, as JSON.
func TestOpenAPIServed(t *testing.T) {
	srv := authServer(t, Config{APIToken: testToken, AdminSeparate: true})
	for name, h := range map[string]fasthttp.RequestHandler{"public": srv.Handler, "admin": srv.admin} {
		resp := do(h, "GET", "/openapi.json", "")
		if resp.StatusCode() != 200 || string(resp.Header.ContentType()) != "application/json" || !json.Valid(resp.Body()) ||
			!bytes.Contains(resp.Body(), []byte(`"openapi": "3.1.0"`)) {
			t.Errorf("%s listener: GET /openapi.json without a token: %d %s", name, resp.StatusCode(), resp.Header.ContentType())
		}
	}
}
