package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/stitch"
	"github.com/rungdev/rung/stitch/outbox"
	"github.com/rungdev/rung/stitch/sqldb"
)

// runReconcile recomputes every rollup of a time range (of one site, with --site) from
// the raw signals with SQL, compares it row by row with what the pre-aggregator wrote,
// prints each mismatch and fails when there is any. It must run with the rules serve
// runs with (--session-timeout, --goals).
func runReconcile(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := newFlags("reconcile")
	var sf statsFlags
	sf.register(fs, "-24h")
	fs.Lookup("site").Usage = "compare one site's rollups; empty: every site"
	timeout := fs.Duration("session-timeout", 30*time.Minute, "the inactivity that ends a session, as serve runs with")
	goals := fs.String("goals", preagg.DefaultGoal, "comma-separated event names that are conversions, as serve runs with")
	business := fs.String("business", "", "PostgreSQL URL of the business database, to set lead_created against form_submitted; empty: business.db in --data-dir when it exists; none: skip")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	cfg := preagg.Config{SessionTimeout: *timeout, Goals: preagg.ParseGoals(*goals)}
	if len(cfg.Goals) == 0 {
		return badUsage(fs, fmt.Errorf("--goals %q: name at least one goal event", *goals))
	}
	if err := cfg.Validate(); err != nil {
		return badUsage(fs, err)
	}
	from, to, err := sf.times()
	if err != nil {
		return badUsage(fs, err)
	}
	if to.IsZero() {
		to = time.Now()
	}
	st, err := openSink(ctx, sf.sinkAt(), true, metrics.NewSet())
	if err != nil {
		return err
	}
	defer st.Close()
	var auditor preagg.Auditor = st
	if sf.site != "" {
		auditor = oneSite{st, sf.site}
	}
	audit, err := preagg.Reconcile(ctx, auditor, from, to, cfg.Rules())
	if errors.Is(err, preagg.ErrRange) {
		return badUsage(fs, err)
	}
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
	if !sf.json && sf.site != "" {
		fmt.Fprintln(stdout, "lead_created not compared: the business events carry no site")
	} else if !sf.json { // --json prints the rollup audit alone, one document
		if err := reconcileLeads(ctx, st, *business, sf.dataDir, from, to, stdout); err != nil {
			return err
		}
	}
	if n := len(audit.Mismatches); n > 0 {
		return fmt.Errorf("%w: %d rows", preagg.ErrMismatch, n)
	}
	return nil
}

// oneSite narrows an audit to one site. Every rollup row (a session, a landing hour, a
// first exposure) is computed from one site's signals alone, so a site's rows among
// every site's are the rows it would have by itself; the stores still compute them all.
type oneSite struct {
	preagg.Auditor
	site string
}

func (a oneSite) PreRolled(ctx context.Context, fromMs, toMs int64, rules sink.Rules) (*sink.Rollups, error) {
	r, err := a.Auditor.PreRolled(ctx, fromMs, toMs, rules)
	return a.only(r), err
}

func (a oneSite) Recompute(ctx context.Context, fromMs, toMs int64, rules sink.Rules) (*sink.Rollups, error) {
	r, err := a.Auditor.Recompute(ctx, fromMs, toMs, rules)
	return a.only(r), err
}

func (a oneSite) only(r *sink.Rollups) *sink.Rollups {
	if r == nil {
		return nil
	}
	r.Sessions = slices.DeleteFunc(r.Sessions, func(s sink.Session) bool { return s.Site != a.site })
	r.Landing = slices.DeleteFunc(r.Landing, func(l sink.LandingHour) bool { return l.Site != a.site })
	r.Exposures = slices.DeleteFunc(r.Exposures, func(e sink.VisitorExposure) bool { return e.Site != a.site })
	return r
}

// reconcileLeads sets the durable count of leads (lead_created in the events table)
// against the lossy one (form_submitted signals in the sink) and reports the telemetry's
// undercount. The gap is what the ladder warns about, not an error: it never fails the
// command.
func reconcileLeads(ctx context.Context, st store, business, dataDir string, from, to time.Time, stdout io.Writer) error {
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
