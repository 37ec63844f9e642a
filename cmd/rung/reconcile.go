package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/stitch"
	"github.com/rungdev/rung/stitch/outbox"
	"github.com/rungdev/rung/stitch/sqldb"
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
	business := fs.String("business", "", "PostgreSQL URL of the business database, to set lead_created against form_submitted; empty: business.db in --data-dir when it exists; none: skip")
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
	st, err := openStatsStore(ctx, &sf)
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
	if !sf.json { // --json prints the rollup audit alone, one document
		if err := reconcileLeads(ctx, st, *business, sf.dataDir, from, to, stdout); err != nil {
			return err
		}
	}
	if n := len(audit.Mismatches); n > 0 {
		return fmt.Errorf("%w: %d rows", preagg.ErrMismatch, n)
	}
	return nil
}

// reconcileLeads sets the durable count of leads (lead_created in the events table)
// against the lossy one (form_submitted signals in the sink) and reports the telemetry's
// undercount. The gap is what the ladder warns about, not an error: it never fails the
// command.
func reconcileLeads(ctx context.Context, st statsStore, business, dataDir string, from, to time.Time, stdout io.Writer) error {
	d, dsn := sqldb.Postgres, business
	switch business {
	case "none":
		return nil
	case "":
		d, dsn = sqldb.SQLite, filepath.Join(dataDir, outbox.BusinessDBFile)
		if _, err := os.Stat(dsn); err != nil {
			fmt.Fprintf(stdout, "no business database at %s: lead_created not compared\n", dsn)
			return nil
		}
	}
	db, err := sqldb.Open(ctx, d, dsn)
	if err != nil {
		return fmt.Errorf("open the business database: %w", err)
	}
	defer db.Close()
	signals, err := st.Signals(ctx, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return err
	}
	var forms int64
	for i := range signals {
		if g := &signals[i]; g.Type == schemas.TypeEvent && g.Name == preagg.DefaultGoal && !g.Bot {
			forms++
		}
	}
	r, err := stitch.Reconcile(ctx, db, d, from, to, forms)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, r.String())
	return nil
}
