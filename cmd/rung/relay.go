package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/rungdev/rung/stitch/outbox"
)

// runRelay ships committed outbox rows to NATS JetStream and projects them into the
// events table (or, without --nats, projects them straight from the outbox). All logic
// is in stitch/outbox; this only reads flags and wires.
func runRelay(ctx context.Context, args []string, env environ, stdout io.Writer) (err error) {
	fs := newFlags("relay")
	var cfg outbox.PipelineConfig
	var dataDir, metricsAddr, logLevel string
	var dryRun bool
	fs.StringVar(&cfg.Postgres, "postgres", "", "PostgreSQL URL of the business database; empty: SQLite in --data-dir")
	fs.StringVar(&dataDir, "data-dir", "./rung-data", "directory of the embedded stores; the business database is "+outbox.BusinessDBFile+" there")
	fs.StringVar(&cfg.NATS, "nats", "", "NATS URL; empty: no broker, project straight into the events table")
	fs.StringVar(&cfg.Broker.Stream, "stream", "RUNG_EVENTS", "JetStream stream, created when absent")
	fs.StringVar(&cfg.Broker.SubjectPrefix, "subject-prefix", "rung.events", "events are published on <prefix>.<event name>")
	fs.DurationVar(&cfg.Broker.DuplicateWindow, "duplicate-window", 2*time.Minute, "the stream's dedup window when rung creates it")
	fs.StringVar(&cfg.Projector.Durable, "consumer", "rung-projector", "durable consumer of the projector")
	fs.BoolVar(&cfg.NoProjector, "no-projector", false, "with --nats: only ship; another process projects")
	fs.IntVar(&cfg.Relay.BatchSize, "batch", 100, "outbox rows claimed per round (environment: RUNG_RELAY_BATCH)")
	fs.IntVar(&cfg.Relay.MaxAttempts, "max-attempts", 10, "failures before a row moves to rung_outbox_dead (environment: RUNG_RELAY_MAX_ATTEMPTS)")
	fs.DurationVar(&cfg.Relay.Retention, "retention", 7*24*time.Hour, "prune published outbox rows older than this; negative keeps them (environment: RUNG_OUTBOX_RETENTION)")
	fs.StringVar(&metricsAddr, "metrics-addr", "", "serve /metrics on this address, e.g. 127.0.0.1:9465; empty: off (environment: RUNG_RELAY_METRICS_ADDR)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&dryRun, "dry-run", false, "print the resolved configuration and exit")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	var bad []error
	if cfg.Postgres == "" {
		cfg.SQLitePath = filepath.Join(dataDir, outbox.BusinessDBFile)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		bad = append(bad, fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel))
	}
	if metricsAddr != "" {
		if _, _, err := net.SplitHostPort(metricsAddr); err != nil {
			bad = append(bad, fmt.Errorf("--metrics-addr %q: %w", metricsAddr, err))
		}
	}
	if err := cfg.Validate(); err != nil {
		bad = append(bad, err)
	}
	if err := errors.Join(bad...); err != nil {
		return badUsage(fs, err)
	}
	if dryRun {
		shown := map[string]any{"postgres": redact(cfg.Postgres), "sqlite": cfg.SQLitePath, "nats": redact(cfg.NATS),
			"no_projector": cfg.NoProjector, "stream": cfg.Broker.Stream, "subject_prefix": cfg.Broker.SubjectPrefix,
			"duplicate_window": cfg.Broker.DuplicateWindow.String(), "consumer": cfg.Projector.Durable,
			"batch": cfg.Relay.BatchSize, "max_attempts": cfg.Relay.MaxAttempts, "retention": cfg.Relay.Retention.String(),
			"metrics_addr": metricsAddr, "log_level": logLevel}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(shown)
	}
	if cfg.SQLitePath != "" {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return fmt.Errorf("create --data-dir %s: %w", dataDir, err)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	p, err := outbox.OpenPipeline(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeWith("close the outbox", p.Close)) }()
	// Stop order: the relay and projector stop, then the metrics listener (so the last
	// scrape sees their final counts), then the databases close (deferred).
	sup := &supervisor{log: log}
	sup.then("stop relaying", part{"outbox relay", p.Run})
	if metricsAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			p.WriteMetrics(w)
		})
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("listen on --metrics-addr %s: %w", metricsAddr, err)
		}
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		sup.then("metrics", httpPart("metrics listener", srv, ln, 5*time.Second))
	}
	to := "the events table (no broker)"
	if cfg.NATS != "" {
		to = "NATS stream " + cfg.Broker.Stream
	}
	fmt.Fprintf(stdout, "rung relay: shipping the %s outbox to %s\n", p.Dialect, to)
	return sup.Run(ctx)
}

// redact hides the password in a URL: show where, not how.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = url.User(u.User.Username())
		return u.Redacted()
	}
	return raw
}
