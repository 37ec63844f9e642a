package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/preagg/stats"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink/clickhouse"
	"github.com/rungdev/rung/sink/sqlite"
)

const queryUsage = `usage:
  rung query landing-pages [flags]   landing-page CVR with 95% intervals
  rung query experiment ID [flags]   variant lift against the control

run either with -h for its flags`

// runQuery answers the landing-page and experiment questions from the rollups, as a
// table or as the API's JSON (--json).
func runQuery(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("rung query: say what to query\n" + queryUsage)
	}
	switch args[0] {
	case "landing-pages":
		return queryLandingPages(ctx, args[1:], env, stdout)
	case "experiment":
		if len(args) < 2 || strings.HasPrefix(args[1], "-") {
			return errors.New("rung query experiment: name the experiment: rung query experiment ID [flags]")
		}
		return queryExperiment(ctx, args[1], args[2:], env, stdout)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, queryUsage)
		return flag.ErrHelp
	}
	return fmt.Errorf("rung query %q: unknown query\n%s", args[0], queryUsage)
}

// statsFlags are the flags every stats command shares.
type statsFlags struct {
	clickhouse, cluster string
	dataDir             string
	site, from, to      string
	json                bool
}

func (s *statsFlags) register(fs *flag.FlagSet, defaultFrom string) {
	fs.StringVar(&s.clickhouse, "clickhouse", "", "ClickHouse DSN, e.g. clickhouse://127.0.0.1:9000/rung; empty: the embedded SQLite sink in --data-dir")
	fs.StringVar(&s.cluster, "clickhouse-cluster", "", "the cluster the tables are sharded over, as serve runs with")
	fs.StringVar(&s.dataDir, "data-dir", "./rung-data", "directory of the embedded stores")
	fs.StringVar(&s.site, "site", "", "one site; empty: every site")
	fs.StringVar(&s.from, "from", defaultFrom, "start: RFC 3339, 2006-01-02, Unix seconds or ms, or -7d / -24h")
	fs.StringVar(&s.to, "to", "", "end (exclusive), same forms; empty: now")
	fs.BoolVar(&s.json, "json", false, "print the API's JSON instead of a table")
}

func (s *statsFlags) times() (from, to time.Time, err error) {
	now := time.Now()
	if from, err = stats.ParseTime(s.from, now); err != nil {
		return from, to, fmt.Errorf("--from: %w", err)
	}
	if to, err = stats.ParseTime(s.to, now); err != nil {
		return from, to, fmt.Errorf("--to: %w", err)
	}
	return from, to, nil
}

// statsStore is what the stats commands read: the rollups and, for reconcile, the raw
// signals behind them.
type statsStore interface {
	stats.Reader
	preagg.Auditor
	Signals(ctx context.Context, fromMs, toMs int64) ([]schemas.Signal, error)
	Close() error
}

// openStatsStore opens the sink serve writes to, for reading. The embedded store must
// exist already: a query against a fresh, empty file would only mislead.
func openStatsStore(ctx context.Context, sf *statsFlags) (statsStore, error) {
	chDSN, dataDir := sf.clickhouse, sf.dataDir
	if chDSN != "" {
		if !strings.HasPrefix(chDSN, "clickhouse://") {
			return nil, fmt.Errorf("--clickhouse %q: want clickhouse://host:port/database (the native protocol)", chDSN)
		}
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return clickhouse.Open(octx, chDSN, clickhouse.Options{Writers: 1, Cluster: sf.cluster}, metrics.NewSet())
	}
	path := filepath.Join(dataDir, "telemetry.db")
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no telemetry store at %s (point --data-dir at the one rung serve uses, or give --clickhouse): %w", path, err)
	}
	return sqlite.Open(ctx, path, metrics.NewSet())
}

func queryLandingPages(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := flag.NewFlagSet("rung query landing-pages", flag.ContinueOnError)
	var sf statsFlags
	sf.register(fs, "-30d")
	var lq stats.LandingQuery
	fs.StringVar(&lq.UTMSource, "utm-source", "", "only sessions that landed with this utm_source")
	fs.StringVar(&lq.UTMMedium, "utm-medium", "", "only sessions that landed with this utm_medium")
	fs.StringVar(&lq.UTMCampaign, "utm-campaign", "", "only sessions that landed with this utm_campaign")
	fs.StringVar(&lq.Sort, "sort", "sessions", "order by "+strings.Join(stats.LandingSorts, ", "))
	fs.StringVar(&lq.Order, "order", "", "asc or desc; default desc (asc for path)")
	fs.IntVar(&lq.Limit, "limit", 50, "landing pages per page, 1 to 1000")
	fs.IntVar(&lq.Offset, "offset", 0, "landing pages to skip")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	var err error
	if lq.From, lq.To, err = sf.times(); err != nil {
		return err
	}
	lq.Site = sf.site
	st, err := openStatsStore(ctx, &sf)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := stats.NewQueries(st, stats.Options{}).LandingPages(ctx, lq)
	if err != nil {
		return err
	}
	if sf.json {
		return printConfig(stdout, rep)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "LANDING PAGE\tSESSIONS\tCONVERTING\tCVR\t95% INTERVAL\t")
	for _, p := range rep.Pages {
		path := terminalSafe(p.Path)
		if p.Path == "" {
			path = "(no pageview yet)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s – %s\t\n", path, fmtCount(p.Sessions), fmtCount(p.Converted),
			fmtRate(p.CVR), fmtRate(p.CI.Low), fmtRate(p.CI.High))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	where := "every site"
	if rep.Site != "" {
		where = terminalSafe(rep.Site)
	}
	shown := "none shown"
	if len(rep.Pages) > 0 {
		shown = fmt.Sprintf("showing %d–%d", rep.Offset+1, rep.Offset+len(rep.Pages))
	}
	fmt.Fprintf(stdout, "\n%s sessions, %s converting (%s) on %d landing pages of %s, started %s to %s UTC; %s, by %s %s.\n",
		fmtCount(rep.Sessions), fmtCount(rep.Converted), fmtRate(rep.CVR), rep.Total, where,
		rep.From.Format("2006-01-02 15:04"), rep.To.Format("2006-01-02 15:04"), shown, rep.Sort, rep.Order)
	return nil
}

func queryExperiment(ctx context.Context, id string, args []string, env environ, stdout io.Writer) error {
	fs := flag.NewFlagSet("rung query experiment", flag.ContinueOnError)
	var sf statsFlags
	sf.register(fs, "")
	control := fs.String("control", "", `the variant others are compared with; default "control"`)
	weights := fs.String("weights", "", "the planned split for the sample-ratio check, e.g. control:1,b:1; default equal")
	minVisitors := fs.Int64("min-visitors", 100, "visitors per variant below which the result is flagged as too early")
	mixing := fs.Float64("mixing-sd", 0.01, "τ of the always-valid interval: the absolute CVR difference you expect, chosen before looking")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	eq := stats.ExperimentQuery{ID: id, Site: sf.site, Control: *control}
	var err error
	if eq.From, eq.To, err = sf.times(); err != nil {
		return err
	}
	if eq.Weights, err = stats.ParseWeights(*weights); err != nil {
		return fmt.Errorf("--weights: %w", err)
	}
	if *mixing <= 0 || *mixing >= 1 {
		return fmt.Errorf("--mixing-sd %v: want a difference of rates between 0 and 1", *mixing)
	}
	st, err := openStatsStore(ctx, &sf)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := stats.NewQueries(st, stats.Options{MinVisitors: *minVisitors, MixingSD: *mixing}).Experiment(ctx, eq)
	if err != nil {
		return err
	}
	if sf.json {
		return printConfig(stdout, rep)
	}
	fmt.Fprintf(stdout, "experiment %s", terminalSafe(rep.Experiment))
	if rep.Site != "" {
		fmt.Fprintf(stdout, " on %s", terminalSafe(rep.Site))
	}
	fmt.Fprintf(stdout, ": %s visitors, %s converted; compared with %s\n\n", fmtCount(rep.Visitors), fmtCount(rep.Converted), terminalSafe(rep.Control))
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "VARIANT\tVISITORS\tCONVERTED\tCVR\t95% INTERVAL\tLIFT\t95% INTERVAL\tP-VALUE\tALWAYS-VALID\t")
	for _, v := range rep.Variants {
		lift, liftCI, p, seq := "—", "", "—", "—"
		if l := v.Lift; l != nil {
			if l.Relative != nil {
				lift = fmtSigned(*l.Relative)
				liftCI = fmtSigned(l.CI.Low) + " to " + fmtSigned(l.CI.High)
			} else {
				lift = "undefined"
			}
			if l.PValue != nil {
				p = strconv.FormatFloat(*l.PValue, 'f', 4, 64)
			}
			if s := l.SequentialRelative; s != nil {
				seq = fmtSigned(s.Low) + " to " + fmtSigned(s.High)
			}
		}
		name := terminalSafe(v.Name)
		if v.Control {
			name += " (control)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s – %s\t%s\t%s\t%s\t%s\t\n", name, fmtCount(v.Visitors), fmtCount(v.Converted),
			fmtRate(v.CVR), fmtRate(v.CI.Low), fmtRate(v.CI.High), lift, liftCI, p, seq)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if s := rep.SRM; s != nil {
		verdict := "ok"
		if s.Mismatch {
			verdict = "MISMATCH"
		}
		fmt.Fprintf(stdout, "\nsample ratio: χ² %.2f (df %d), p = %.4g: %s\n", s.ChiSquare, s.DF, s.PValue, verdict)
	}
	for _, warn := range rep.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", terminalSafe(warn))
	}
	return nil
}

// fmtCount writes a count with thousands separators.
func fmtCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return sign + b.String()
}

// fmtRate writes a rate as a percentage, with two decimals below 1%.
func fmtRate(v float64) string {
	if v != 0 && v < 0.01 && v > -0.01 {
		return strconv.FormatFloat(v*100, 'f', 2, 64) + "%"
	}
	return strconv.FormatFloat(v*100, 'f', 1, 64) + "%"
}

func fmtSigned(v float64) string {
	if v > 0 {
		return "+" + fmtRate(v)
	}
	return fmtRate(v)
}
