package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/stitch/outbox"
)

// runMigrate creates or migrates every table rung owns — the telemetry sink's and the
// business database's outbox and events — and exits, for deployments that run schema
// changes as a separate step. serve and relay migrate on start too.
func runMigrate(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := newFlags("migrate")
	cfg := pipeConfig{}
	fs.StringVar(&cfg.ClickHouse, "clickhouse", "", "ClickHouse DSN; empty: the embedded SQLite sink in --data-dir")
	fs.StringVar(&cfg.ClickHouseCluster, "clickhouse-cluster", "", "shard the tables over this cluster of the servers' <remote_servers>, as serve does")
	fs.StringVar(&cfg.DataDir, "data-dir", "./rung-data", "directory of the embedded stores")
	postgres := fs.String("postgres", "", "PostgreSQL URL of the business database; empty: business.db in --data-dir")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	store, err := openSink(ctx, cfg.sinkAt(), false, metrics.NewSet())
	if err != nil {
		return fmt.Errorf("migrate telemetry sink: %w", err)
	}
	store.Close()
	fmt.Fprintf(stdout, "telemetry sink ready: %s\n", cfg.sinkAt())
	pipe, err := outbox.OpenPipeline(ctx, outbox.PipelineConfig{
		Postgres: *postgres, SQLitePath: filepath.Join(cfg.DataDir, outbox.BusinessDBFile)})
	if err != nil {
		return fmt.Errorf("migrate business database: %w", err)
	}
	pipe.Close()
	where := *postgres
	if where == "" {
		where = "sqlite:" + filepath.Join(cfg.DataDir, outbox.BusinessDBFile)
	}
	fmt.Fprintf(stdout, "business database ready (outbox, events): %s\n", redact(where))
	return nil
}
