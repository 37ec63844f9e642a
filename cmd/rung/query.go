package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/preagg/stats"
)

// queries are the questions `rung query` answers.
func queries() map[string]command {
	return map[string]command{
		"landing-pages": {"", "landing-page CVR with 95% intervals", queryLandingPages},
		"experiment":    {"ID", "an experiment's variants: CVR, lift against the control, sample-ratio check", experimentByID},
		"trend":         {"", "sessions, conversions and CVR per hour or day", queryTrend},
		"sources":       {"", "sessions, conversions and CVR by utm value or referrer", querySources},
	}
}

// runQuery answers the landing-page and experiment questions from the rollups, as a
// table or as the API's JSON (--json).
func runQuery(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := newFlags("query")
	if len(args) == 0 {
		return badUsage(fs, errors.New("say what to query: landing-pages, trend, sources or experiment ID"))
	}
	if isHelp(args[0]) {
		var b strings.Builder
		a, summary := synopsis("query")
		writeHeader(&b, fs.Name(), a, summary)
		b.WriteString("\nqueries:\n")
		writeCommands(&b, queries())
		b.WriteString("\nrun 'rung query QUERY --help' for a query's flags\n")
		return &helpRequest{text: b.String()}
	}
	q, ok := queries()[args[0]]
	if !ok {
		return badUsage(fs, fmt.Errorf("unknown query %q: want landing-pages, trend, sources or experiment ID", args[0]))
	}
	err := q.run(ctx, args[1:], env, stdout)
	if errors.Is(err, stats.ErrQuery) && !errors.As(err, new(*usageError)) {
		// The query's own checks (--sort, --limit, a range that ends before it starts)
		// refuse the command line, not the store.
		return badUsage(newFlags("query "+args[0]), err)
	}
	return err
}

// experimentByID reads the experiment's ID, which comes before the flags.
func experimentByID(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if slices.ContainsFunc(args, isHelp) {
			return queryExperiment(ctx, "", args, env, stdout)
		}
		return badUsage(newFlags("query experiment"), errors.New("name the experiment: rung query experiment ID [flags]"))
	}
	return queryExperiment(ctx, args[0], args[1:], env, stdout)
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

func (s *statsFlags) sinkAt() sinkAt {
	return sinkAt{ClickHouse: s.clickhouse, Cluster: s.cluster, DataDir: s.dataDir}
}

func queryLandingPages(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := newFlags("query landing-pages")
	var (
		sf statsFlags
		uf filterFlags
		lq stats.LandingQuery
	)
	sf.register(fs, "-30d")
	uf.register(fs)
	fs.StringVar(&lq.Sort, "sort", "sessions", "order by "+strings.Join(stats.LandingSorts, ", "))
	fs.StringVar(&lq.Order, "order", "", "asc or desc; default desc (asc for path)")
	fs.IntVar(&lq.Limit, "limit", 50, "landing pages per page, 1 to 1000")
	fs.IntVar(&lq.Offset, "offset", 0, "landing pages to skip")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	f, err := uf.filter(fs, &sf)
	if err != nil {
		return err
	}
	lq.Filter = f
	st, err := openSink(ctx, sf.sinkAt(), true, metrics.NewSet())
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
	// Every site's pages are kept apart: with no site chosen, each row names its own.
	head, site := "LANDING PAGE\t", func(stats.LandingPage) string { return "" }
	if rep.Site == "" {
		head, site = "SITE\tLANDING PAGE\t", func(p stats.LandingPage) string { return terminalSafe(p.Site) + "\t" }
	}
	fmt.Fprintln(w, head+"SESSIONS\tCONVERTING\tCVR\t95% INTERVAL\t")
	for _, p := range rep.Pages {
		path := terminalSafe(p.Path)
		if p.Path == "" {
			path = "(no pageview yet)"
		}
		fmt.Fprintf(w, "%s%s\t%s\t%s\t%s\t%s – %s\t\n", site(p), path, fmtCount(p.Sessions), fmtCount(p.Converted),
			fmtRate(p.CVR), fmtRate(p.CI.Low), fmtRate(p.CI.High))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	where := siteName(rep.Site)
	shown := "none shown"
	if len(rep.Pages) > 0 {
		shown = fmt.Sprintf("showing %d–%d", rep.Offset+1, rep.Offset+len(rep.Pages))
	}
	fmt.Fprintf(stdout, "\n%s sessions, %s converting (%s) on %d landing pages of %s, started %s to %s UTC; %s, by %s %s.\n",
		fmtCount(rep.Sessions), fmtCount(rep.Converted), fmtRate(rep.CVR), rep.Total, where,
		rep.From.Format("2006-01-02 15:04"), rep.To.Format("2006-01-02 15:04"), shown, rep.Sort, rep.Order)
	if rep.BotSignals > 0 {
		noun := "signals"
		if rep.BotSignals == 1 {
			noun = "signal"
		}
		fmt.Fprintf(stdout, "Bots left out: %s %s received in the range.\n", fmtCount(rep.BotSignals), noun)
	}
	return nil
}

// filterFlags are the session filter's flags beside statsFlags: the landing pageview's
// utm values.
type filterFlags struct{ source, medium, campaign string }

func (u *filterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&u.source, "utm-source", "", "only sessions that landed with this utm_source")
	fs.StringVar(&u.medium, "utm-medium", "", "only sessions that landed with this utm_medium")
	fs.StringVar(&u.campaign, "utm-campaign", "", "only sessions that landed with this utm_campaign")
}

// filter is the session filter of the command line.
func (u *filterFlags) filter(fs *flag.FlagSet, sf *statsFlags) (stats.Filter, error) {
	f := stats.Filter{Site: sf.site, UTMSource: u.source, UTMMedium: u.medium, UTMCampaign: u.campaign}
	var err error
	if f.From, f.To, err = sf.times(); err != nil {
		return f, badUsage(fs, err)
	}
	return f, nil
}

func queryTrend(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := newFlags("query trend")
	var (
		sf statsFlags
		uf filterFlags
	)
	sf.register(fs, "-30d")
	uf.register(fs)
	interval := fs.String("interval", "", "hour or day; empty: hour up to three days, day beyond")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	f, err := uf.filter(fs, &sf)
	if err != nil {
		return err
	}
	st, err := openSink(ctx, sf.sinkAt(), true, metrics.NewSet())
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := stats.NewQueries(st, stats.Options{}).Trend(ctx, stats.TrendQuery{Filter: f, Interval: *interval})
	if err != nil {
		return err
	}
	if sf.json {
		return printConfig(stdout, rep)
	}
	layout := "2006-01-02 15:04"
	if rep.Interval == "day" {
		layout = "2006-01-02"
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, strings.ToUpper(rep.Interval)+" (UTC)\tSESSIONS\tCONVERTING\tCVR\t95% INTERVAL\t")
	for _, p := range rep.Points {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s – %s\t\n", p.Start.Format(layout), fmtCount(p.Sessions), fmtCount(p.Converted),
			fmtRate(p.CVR), fmtRate(p.CI.Low), fmtRate(p.CI.High))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s sessions, %s converting (%s) on %s, started %s to %s UTC, by the %s.\n",
		fmtCount(rep.Total.Sessions), fmtCount(rep.Total.Converted), fmtRate(rep.Total.CVR), siteName(rep.Site),
		rep.From.Format("2006-01-02 15:04"), rep.To.Format("2006-01-02 15:04"), rep.Interval)
	return nil
}

func querySources(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := newFlags("query sources")
	var (
		sf statsFlags
		uf filterFlags
	)
	sf.register(fs, "-30d")
	uf.register(fs)
	var sq stats.SourcesQuery
	fs.StringVar(&sq.By, "by", "utm_source", "break sessions down by "+strings.Join(stats.SourceDimensions, ", ")+" (its host)")
	fs.IntVar(&sq.Limit, "limit", 20, "sources to show, 1 to 1000")
	goals := fs.String("goals", preagg.DefaultGoal, "comma-separated event names that count as conversions, as serve runs with (for --by referrer, read from raw signals)")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	var err error
	if sq.Filter, err = uf.filter(fs, &sf); err != nil {
		return err
	}
	st, err := openSink(ctx, sf.sinkAt(), true, metrics.NewSet())
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := stats.NewQueries(st, stats.Options{Goals: preagg.ParseGoals(*goals)}).Sources(ctx, sq)
	if err != nil {
		return err
	}
	if sf.json {
		return printConfig(stdout, rep)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, strings.ToUpper(rep.By)+"\tSESSIONS\tCONVERTING\tCVR\t95% INTERVAL\t")
	for _, s := range rep.Sources {
		v := terminalSafe(s.Value)
		if s.Value == "" {
			v = "(none)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s – %s\t\n", v, fmtCount(s.Sessions), fmtCount(s.Converted),
			fmtRate(s.CVR), fmtRate(s.CI.Low), fmtRate(s.CI.High))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s sessions, %s converting (%s) from %d sources of %s, started %s to %s UTC; showing %d.\n",
		fmtCount(rep.All.Sessions), fmtCount(rep.All.Converted), fmtRate(rep.All.CVR), rep.Total, siteName(rep.Site),
		rep.From.Format("2006-01-02 15:04"), rep.To.Format("2006-01-02 15:04"), len(rep.Sources))
	return nil
}

// siteName names a report's site for a summary line.
func siteName(site string) string {
	if site == "" {
		return "every site"
	}
	return terminalSafe(site)
}

func queryExperiment(ctx context.Context, id string, args []string, env environ, stdout io.Writer) error {
	fs := newFlags("query experiment")
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
		return badUsage(fs, err)
	}
	if eq.Weights, err = stats.ParseWeights(*weights); err != nil {
		return badUsage(fs, fmt.Errorf("--weights: %w", err))
	}
	if *mixing <= 0 || *mixing >= 1 {
		return badUsage(fs, fmt.Errorf("--mixing-sd %v: want a difference of rates between 0 and 1", *mixing))
	}
	st, err := openSink(ctx, sf.sinkAt(), true, metrics.NewSet())
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
