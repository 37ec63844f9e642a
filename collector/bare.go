package collector

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/valyala/fasthttp"
)

// ServeBare runs the baseline of every /collect figure: a minimal fasthttp server that
// reads the request and answers 202 with a body the size of rung's, doing nothing else.
// It returns when ctx is cancelled.
func ServeBare(ctx context.Context, ln net.Listener) error {
	srv := &fasthttp.Server{
		Handler:               bare,
		NoDefaultServerHeader: true,
		MaxRequestBodySize:    4 << 20,
		CloseOnShutdown:       true,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve bare %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.ShutdownWithContext(sctx)
	return <-errc
}

var bareBody = []byte(`{"accepted":1,"rejected":0}` + "\n")

// bare is the baseline's handler.
func bare(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.SetBody(bareBody)
}
