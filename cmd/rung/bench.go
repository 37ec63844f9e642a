package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rungdev/rung/bench"
)

// benchConfig is everything `rung bench` can be told, from flags and RUNG_* variables.
type benchConfig struct {
	Target            string        `json:"target"`
	AllowRemote       bool          `json:"allow_remote"`
	Rate              float64       `json:"rate"`
	SignalRate        float64       `json:"signal_rate"`
	Ramp              time.Duration `json:"ramp"`
	Connections       int           `json:"connections"`
	Batch             int           `json:"batch"`
	Duration          time.Duration `json:"duration"`
	Count             int64         `json:"count"`
	Timeout           time.Duration `json:"timeout"`
	Finish            time.Duration `json:"finish"`
	Seed              uint64        `json:"seed"`
	Run               string        `json:"run"`
	Site              string        `json:"site"`
	Experiment        string        `json:"experiment"`
	Variants          string        `json:"variants"`
	Exposed           float64       `json:"exposed"`
	BaseCVR           float64       `json:"base_cvr"`
	ReturnRate        float64       `json:"return_rate"`
	Verify            bool          `json:"verify"`
	ClickHouse        string        `json:"clickhouse"`
	ClickHouseCluster string        `json:"clickhouse_cluster"`
	DataDir           string        `json:"data_dir"`
	StatsURL          string        `json:"stats_url"`
	APIToken          string        `json:"-"`
	VerifyWait        time.Duration `json:"verify_wait"`
	Watch             string        `json:"watch"`
	JSON              bool          `json:"json"`
	HTML              string        `json:"html"`
	Quiet             bool          `json:"quiet"`
	DryRun            bool          `json:"-"`
}

func (c *benchConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Target, "target", "http://127.0.0.1:8080", "rung's base URL; signals go to TARGET/collect; several, comma-separated, spread the connections over a cluster's collectors")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a target outside 127.0.0.0/8 and ::1 (only a server you own)")
	fs.Float64Var(&c.Rate, "rate", 0, "open loop: requests/s to send on schedule; 0 (and no --signal-rate): closed loop")
	fs.Float64Var(&c.SignalRate, "signal-rate", 0, "open loop: signals/s to send on schedule (requests/s × --batch)")
	fs.DurationVar(&c.Ramp, "ramp", 0, "open loop: rise from 0 to the rate over this long; latency is reported after it")
	fs.IntVar(&c.Connections, "connections", 64, "connections; in closed loop each sends its next request when the last is answered")
	fs.IntVar(&c.Batch, "batch", 1, "signals per request: 1 posts a signal object, more post an array")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "length of the timed phase; 0: until --count")
	fs.Int64Var(&c.Count, "count", 0, "requests in the timed phase; 0: until --duration")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "longest wait for one answer")
	fs.DurationVar(&c.Finish, "finish", 0, "after the timed phase, longest spent completing the started visitors' journeys (untimed, reported apart; at --rate in open loop); 0: as long as the rate needs, up to 10m (closed loop: 30s)")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the workload: the same seed makes the same visitors, signals and truth")
	fs.StringVar(&c.Run, "run", "", "run tag in every anonymous_id and event_id (4-16 of a-z0-9); empty: a fresh one")
	fs.StringVar(&c.Site, "site", "", "site of every signal; empty: bench-RUN.example, so the stats checked are this run's alone")
	fs.StringVar(&c.Experiment, "experiment", "signup_cta", "the experiment's name")
	fs.StringVar(&c.Variants, "variants", "control:1:0.05,bold_cta:1:0.06", "variants as name:weight:true-cvr, the control first")
	fs.Float64Var(&c.Exposed, "exposed", 0.8, "share of visitors in the experiment")
	fs.Float64Var(&c.BaseCVR, "base-cvr", 0.04, "true conversion rate of visitors outside the experiment")
	fs.Float64Var(&c.ReturnRate, "return-rate", 0.25, "chance, after each session, that a visitor returns (30+ minutes later, simulated)")
	fs.BoolVar(&c.Verify, "verify", true, "after the run, check the sink and the stats API against what was accepted and the model")
	fs.StringVar(&c.ClickHouse, "clickhouse", "", "the ClickHouse DSN rung writes to, to check what landed (clickhouse://127.0.0.1:9000/rung)")
	fs.StringVar(&c.ClickHouseCluster, "clickhouse-cluster", "", "the cluster rung's tables are sharded over, as rung runs with")
	fs.StringVar(&c.DataDir, "data-dir", "", "the --data-dir of the rung serve under test, to check its SQLite sink (telemetry.db)")
	fs.StringVar(&c.StatsURL, "stats-url", "", "base URL of rung's stats API (its --admin-listen, if set); empty: the target")
	fs.StringVar(&c.APIToken, "api-token", "", "token for the stats API, when rung has one")
	fs.DurationVar(&c.VerifyWait, "verify-wait", 60*time.Second, "longest wait for the flush before judging what landed")
	fs.StringVar(&c.Watch, "watch", "", "processes to sample CPU and memory of, as name=pid,name=pid (e.g. rung=1234)")
	fs.BoolVar(&c.JSON, "json", false, "print the report as JSON")
	fs.StringVar(&c.HTML, "html", "", "also write a self-contained HTML report with charts to this file")
	fs.BoolVar(&c.Quiet, "quiet", false, "no live progress line on stderr")
	fs.BoolVar(&c.DryRun, "dry-run", false, "print the resolved configuration and exit")
}

func (c *benchConfig) loadConfig() (bench.Config, []error) {
	var errs []error
	if c.Rate > 0 && c.SignalRate > 0 {
		errs = append(errs, errors.New("--rate and --signal-rate: give one"))
	}
	rate := c.Rate
	if c.SignalRate > 0 && c.Batch > 0 {
		rate = c.SignalRate / float64(c.Batch)
	}
	run := c.Run
	if run == "" {
		run = freshRun()
	}
	m := bench.DefaultModel(c.Seed, run)
	if c.Site != "" {
		m.Site = c.Site
	}
	m.Experiment.Name, m.Experiment.Share = c.Experiment, c.Exposed
	m.BaseCVR, m.ReturnRate = c.BaseCVR, c.ReturnRate
	vs, err := bench.ParseVariants(c.Variants)
	if err != nil {
		errs = append(errs, fmt.Errorf("--variants: %w", err))
	}
	m.Experiment.Variants = vs
	watch, err := parseWatch(c.Watch)
	if err != nil {
		errs = append(errs, fmt.Errorf("--watch: %w", err))
	}
	if c.ClickHouse != "" && c.DataDir != "" {
		errs = append(errs, errors.New("--clickhouse and --data-dir: give the one sink rung writes to"))
	}
	cfg := bench.Config{Target: strings.TrimRight(c.Target, "/"), AllowRemote: c.AllowRemote, Rate: rate, Ramp: c.Ramp,
		Connections: c.Connections, Batch: c.Batch, Duration: c.Duration, Count: c.Count, Timeout: c.Timeout,
		Finish: c.Finish, Model: m, Watch: watch}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return cfg, errs
}

// freshRun makes a run tag: 8 random base-36 digits.
func freshRun() string {
	var b [8]byte
	rand.Read(b[:])
	const digits = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b[:])
}

func parseWatch(s string) ([]bench.Watched, error) {
	var out []bench.Watched
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		name, pid, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(pid)
		if !ok || name == "" || err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: want name=pid", part)
		}
		out = append(out, bench.Watched{Name: name, PID: n})
	}
	return out, nil
}

// runBench drives load at a rung server, verifies what landed, and reports.
func runBench(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	var c benchConfig
	fs := newFlags("bench")
	c.flags(fs)
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	cfg, errs := c.loadConfig()
	if err := errors.Join(errs...); err != nil {
		return badUsage(fs, err)
	}
	if c.DryRun {
		c.Run, c.Site = cfg.Model.Run, cfg.Model.Site
		return printResolved(stdout, &c)
	}
	if err := bench.CheckTarget(ctx, cfg.Target, cfg.AllowRemote); err != nil {
		return err
	}
	stats := c.StatsURL
	if stats == "" {
		stats, _, _ = strings.Cut(cfg.Target, ",")
	}
	if c.Verify {
		// A stats API that refuses the token would fail the verification only after
		// the whole run and the whole wait: ask it once before the load starts.
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := bench.CheckStatsAccess(pctx, stats, c.APIToken)
		cancel()
		if err != nil {
			return err
		}
	}
	var store bench.Store
	if c.Verify && (c.ClickHouse != "" || c.DataDir != "") {
		octx, cancel := context.WithTimeout(ctx, 30*time.Second)
		s, err := bench.OpenStore(octx, c.ClickHouse, c.ClickHouseCluster, filepath.Join(c.DataDir, "telemetry.db"))
		cancel()
		if err != nil {
			return err
		}
		defer s.Close()
		store = s
	}
	if !c.Quiet {
		cfg.Progress = os.Stderr
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			cfg.ProgressCR = true
		}
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	var v *bench.Verification
	if c.Verify && ctx.Err() == nil {
		if !c.Quiet {
			fmt.Fprintln(os.Stderr, "waiting for the flush, then verifying...")
		}
		v = bench.Verify(ctx, res, bench.VerifyOptions{Store: store, StatsURL: stats, APIToken: c.APIToken, Wait: c.VerifyWait})
	}
	rep := bench.NewReport(res, v)
	if c.HTML != "" {
		if err := writeFileWith(c.HTML, rep.WriteHTML); err != nil {
			return err
		}
	}
	if c.JSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if v != nil && v.Failed() {
		return errors.New("verification failed: see the report")
	}
	return ctx.Err()
}

func writeFileWith(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write report %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write report %s: %w", path, err)
	}
	return nil
}
