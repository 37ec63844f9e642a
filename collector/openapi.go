package collector

import (
	_ "embed"

	"github.com/valyala/fasthttp"
)

// openapiDoc is the OpenAPI 3 document of every HTTP endpoint `rung serve` answers, served
// at /openapi.json. It is public, as /schemas/ is: it describes requests and answers,
// holds no data, and an API client needs it before it has any credentials; the private
// paths it lists answer 401 without them, documented or not.
//
//go:embed openapi.json
var openapiDoc []byte

func (s *Server) openapi(ctx *fasthttp.RequestCtx) {
	if !ctx.IsGet() && !ctx.IsHead() {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		answerError(ctx, fasthttp.StatusMethodNotAllowed, "use GET")
		return
	}
	s.cors(ctx)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.SetBody(openapiDoc)
}

// Paths lists what the server routes: its own paths and its mounts' paths or prefixes
// (a prefix ends in "/"; "/schemas/" stands for the schema files). The OpenAPI test
// checks each is documented.
func (s *Server) Paths() []string {
	p := []string{"/collect", "/healthz", "/readyz", "/metrics", "/openapi.json", "/signin", "/signout", "/schemas/"}
	for _, m := range s.mounts {
		p = append(p, m.Prefix)
	}
	return p
}
