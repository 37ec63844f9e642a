// Command leadform is an example business app for rung: a landing page with a lead form,
// and a handler that takes the visitor's anonymous_id, looks up their attribution, and
// creates the lead and its lead_created event in one transaction. With `rung serve` on
// the same data directory, the whole journey runs locally: page view → form → lead →
// lead_created in the events table.
//
//	rung serve --data-dir ./rung-data &
//	go run ./examples/leadform --data-dir ./rung-data &
//	open http://127.0.0.1:8090/?utm_source=newsletter&utm_campaign=spring
//
// Every flag has a LEADFORM_* environment equivalent.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/sync/errgroup"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink/sqlite"
	"github.com/rungdev/rung/stitch"
	"github.com/rungdev/rung/stitch/outbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1:], log); err != nil && !errors.Is(err, flag.ErrHelp) {
		log.Error("leadform failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	fs := flag.NewFlagSet("leadform", flag.ContinueOnError)
	env := func(key, def string) string {
		if v, ok := os.LookupEnv(key); ok {
			return v
		}
		return def
	}
	listen := fs.String("listen", env("LEADFORM_LISTEN", "127.0.0.1:8090"), "address of the app")
	dataDir := fs.String("data-dir", env("LEADFORM_DATA_DIR", "./rung-data"), "rung's data directory: telemetry.db is read for attribution, "+outbox.BusinessDBFile+" holds leads, outbox and events")
	postgres := fs.String("postgres", env("LEADFORM_POSTGRES", ""), "PostgreSQL URL of the business database instead of SQLite")
	natsURL := fs.String("nats", env("LEADFORM_NATS", ""), "NATS URL: relay through JetStream instead of straight into the events table")
	rungURL := fs.String("rung", env("LEADFORM_RUNG", "http://127.0.0.1:8080"), "rung's public URL, for the page's t.js and /collect")
	attrURL := fs.String("attribution-url", env("LEADFORM_ATTRIBUTION_URL", ""), "read attribution from rung over HTTP at this base URL instead of telemetry.db")
	site := fs.String("site", env("LEADFORM_SITE", "leadform.example"), "the site name signals carry")
	noRelay := fs.Bool("no-relay", false, "do not run a relay in this process (`rung relay` runs one)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		return fmt.Errorf("--listen %q: %w", *listen, err)
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return fmt.Errorf("create --data-dir: %w", err)
	}

	var attr attributor
	if *attrURL != "" {
		attr = &stitch.Client{BaseURL: *attrURL, HTTP: &http.Client{Timeout: 2 * time.Second}}
	} else {
		tel, err := sqlite.Open(ctx, filepath.Join(*dataDir, "telemetry.db"), metrics.NewSet())
		if err != nil {
			return err
		}
		defer tel.Close()
		lookup, err := stitch.NewLookup(tel, stitch.LookupConfig{})
		if err != nil {
			return err
		}
		attr = lookup
	}
	p, err := outbox.OpenPipeline(ctx, outbox.PipelineConfig{Postgres: *postgres,
		SQLitePath: filepath.Join(*dataDir, outbox.BusinessDBFile), NATS: *natsURL, Logger: log})
	if err != nil {
		return err
	}
	defer p.Close()
	if err := migrateLeads(ctx, p.DB, p.Dialect); err != nil {
		return err
	}
	reg, err := schemas.NewRegistry()
	if err != nil {
		return err
	}
	a := &app{db: p.DB, dialect: p.Dialect, schemas: reg, attr: attr, log: log, now: time.Now, rungURL: *rungURL, site: *site,
		pageTmpl: template.Must(template.New("page").Parse(pageHTML))}
	if !*noRelay {
		a.notify = p.Relay.Notify
	}
	srv := &http.Server{Addr: *listen, Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		log.Info("leadform listening", "addr", *listen)
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	if !*noRelay {
		g.Go(func() error { return p.Run(ctx) })
	}
	return g.Wait()
}
