package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/rungdev/rung/preagg"
)

// runReconcile recomputes every rollup of a time range from the raw signals with SQL,
// compares it row by row with what the pre-aggregator wrote, prints each mismatch and
// fails when there is any. It must run with the rules serve runs with
// (--session-timeout, --goals).
func runReconcile(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := flag.NewFlagSet("rung reconcile", flag.ContinueOnError)
	var sf statsFlags
	sf.register(fs, "-24h")
	fs.Lookup("site").Usage = "ignored: reconcile checks every site"
	timeout := fs.Duration("session-timeout", 30*time.Minute, "the inactivity that ends a session, as serve runs with")
	goals := fs.String("goals", preagg.DefaultGoal, "comma-separated event names that are conversions, as serve runs with")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	cfg := preagg.Config{SessionTimeout: *timeout, Goals: preagg.ParseGoals(*goals)}
	if len(cfg.Goals) == 0 {
		return fmt.Errorf("--goals %q: name at least one goal event", *goals)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	from, to, err := sf.times()
	if err != nil {
		return err
	}
	if to.IsZero() {
		to = time.Now()
	}
	st, err := openStatsStore(ctx, sf.clickhouse, sf.dataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	audit, err := preagg.Reconcile(ctx, st, from, to, cfg.Rules())
	if err != nil {
		return err
	}
	if sf.json {
		if err := printConfig(stdout, audit); err != nil {
			return err
		}
	} else {
		for _, m := range audit.Mismatches {
			fmt.Fprintln(stdout, terminalSafe(m.String()))
		}
		fmt.Fprintf(stdout, "compared %d sessions, %d landing hours and %d first exposures from %s to %s: %d mismatches\n",
			audit.Sessions, audit.LandingHours, audit.Exposures, audit.From.Format(time.RFC3339), audit.To.Format(time.RFC3339),
			len(audit.Mismatches))
	}
	if n := len(audit.Mismatches); n > 0 {
		return fmt.Errorf("%w: %d rows", preagg.ErrMismatch, n)
	}
	return nil
}
