// Command rung collects page-view signals at volume, stitches conversions into durable
// business events, answers CVR and lift questions, and places a stat on the ladder of
// metrics architectures. This file only dispatches subcommands; each lives in its own file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand. It parses its own flags from args and writes its
// human output to stdout; errors are returned, logged once by main.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, env environ, stdout io.Writer) error
}

// environ looks up RUNG_* variables; tests pass a map instead of the process environment.
type environ func(key string) (string, bool)

func commands() map[string]command {
	return map[string]command{
		"serve":     {"run the collector, the query API, the dashboard and the placement pages", runServe},
		"aggregate": {"in a cluster: consume partitions of the JetStream stream into the sessionizer and the sink", runAggregate},
		"baseline":  {"run a bare fasthttp server answering 202: the baseline of every /collect ratio", runBaseline},
		"bench":     {"drive load at rung's /collect, measure latency honestly, verify what landed and the stats", runBench},
		"tail":      {"print the newest stored signals", runTail},
		"migrate":   {"create or migrate the sink's and the business database's tables, then exit", runMigrate},
		"place":     {"answer the placement questionnaire: which tier and event level your stat needs", runPlace},
		"relay":     {"ship committed outbox rows to NATS JetStream (or straight into the events table) and project them", runRelay},

		"query":     {"landing-page CVR or an experiment's lift, from the rollups: rung query landing-pages|experiment ID", runQuery},
		"reconcile": {"recompute the rollups from raw signals, print every mismatch, fail on any", runReconcile},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := dispatch(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		log.Error("rung failed", "err", err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string, env environ, stdout, stderr io.Writer) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return errors.New("no subcommand given")
		}
		return flag.ErrHelp
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(stderr, cmds)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
	return c.run(ctx, args[1:], env, stdout)
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: rung <subcommand> [flags]\n\nsubcommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
}
