package main

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/rungdev/rung/collector"
)

// runBaseline serves the bare fasthttp server that BENCHMARKS.md measures rung against.
func runBaseline(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := newFlags("baseline")
	listen := fs.String("listen", "127.0.0.1:8090", "address to answer on")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	fmt.Fprintf(stdout, "bare fasthttp answering 202 on %s\n", ln.Addr())
	return collector.ServeBare(ctx, ln)
}
