package collector

import (
	"bytes"
	_ "embed"
	"html/template"

	"github.com/valyala/fasthttp"
)

//go:embed signin.html
var signinHTML string

var signinPage = template.Must(template.New("signin").Parse(signinHTML))

// pageCSP is the dashboard's policy: the page's own inline styles and forms posting to
// this server, nothing else (no script at all).
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

type signinView struct {
	Next     string // where to go once signed in; a local path
	Open     bool   // no --api-token: nothing to sign in to
	SignedIn bool
	Error    string
}

// account routes /signin and /signout.
func (s *Server) account(ctx *fasthttp.RequestCtx, path []byte) {
	if string(path) == "/signin" {
		s.signin(ctx)
	} else {
		s.signout(ctx)
	}
}

// signin serves the sign-in page (GET) and takes the token from its form (POST): the
// right token sets the session cookie and sends the browser on to next; a wrong one
// answers 401 with the form again.
func (s *Server) signin(ctx *fasthttp.RequestCtx) {
	v := signinView{Open: s.auth.open}
	switch {
	case ctx.IsGet() || ctx.IsHead():
		v.Next = localPath(string(ctx.QueryArgs().Peek("next")))
		_, _, v.SignedIn = s.auth.session(ctx.Request.Header.Cookie(SessionCookie))
		s.page(ctx, fasthttp.StatusOK, v)
	case ctx.IsPost():
		if !bytes.HasPrefix(ctx.Request.Header.ContentType(), []byte("application/x-www-form-urlencoded")) {
			answerError(ctx, fasthttp.StatusUnsupportedMediaType, "send the sign-in form as application/x-www-form-urlencoded")
			return
		}
		form := ctx.PostArgs()
		v.Next = localPath(string(form.Peek("next")))
		if s.auth.open {
			seeOther(ctx, v.Next)
			return
		}
		if !s.auth.tokenOK(form.Peek("token")) {
			s.bodyErrs["unauthorized"].Inc()
			v.Error = "That is not this server's API token."
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="rung"`)
			s.page(ctx, fasthttp.StatusUnauthorized, v)
			return
		}
		s.auth.setCookie(ctx, s.auth.newSession())
		ctx.Response.Header.Set("Cache-Control", "no-store")
		seeOther(ctx, v.Next)
	default:
		ctx.Response.Header.Set("Allow", "GET, HEAD, POST")
		answerError(ctx, fasthttp.StatusMethodNotAllowed, "use GET for the sign-in page, POST to sign in")
	}
}

// signout ends the browser's session (POST, from the sign-in page's button) and goes
// back to the sign-in page; a GET goes there without signing out, since a link or a
// prefetch must not sign anyone out.
func (s *Server) signout(ctx *fasthttp.RequestCtx) {
	switch {
	case ctx.IsPost():
		s.auth.revoke(ctx.Request.Header.Cookie(SessionCookie))
		s.auth.setCookie(ctx, "")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		seeOther(ctx, "/signin")
	case ctx.IsGet() || ctx.IsHead():
		seeOther(ctx, "/signin")
	default:
		ctx.Response.Header.Set("Allow", "GET, HEAD, POST")
		answerError(ctx, fasthttp.StatusMethodNotAllowed, "use POST to sign out")
	}
}

func (s *Server) page(ctx *fasthttp.RequestCtx, status int, v signinView) {
	var b bytes.Buffer
	if err := signinPage.Execute(&b, v); err != nil {
		s.log.Error("render the sign-in page", "err", err)
		answerError(ctx, fasthttp.StatusInternalServerError, "render the sign-in page: "+err.Error())
		return
	}
	h := &ctx.Response.Header
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBody(b.Bytes())
}
