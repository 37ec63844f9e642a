package harness

import "github.com/valyala/fasthttp"

// BrowserUA is the User-Agent of a current Chrome: what t.js's requests carry, so the
// collector counts them as a person's, not a bot's.
const BrowserUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36"

// CollectRequest is a POST /collect of body as t.js sends it (text/plain, from a
// browser), for driving a collector's handler in process.
func CollectRequest(body string) *fasthttp.RequestCtx {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI("/collect")
	ctx.Request.Header.SetContentType("text/plain;charset=UTF-8")
	ctx.Request.Header.SetUserAgent(BrowserUA)
	ctx.Request.SetBodyString(body)
	return &ctx
}
