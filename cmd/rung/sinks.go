package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/preagg/stats"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/clickhouse"
	"github.com/rungdev/rung/sink/sqlite"
)

// store is what rung's commands need of a telemetry store, both sinks being one: writes
// and readiness (serve, aggregate), the rollups and the open sessions, reading signals
// back (tail, reconcile, the attribution lookup).
type store interface {
	sink.Sink
	stats.Reader
	preagg.Resumer
	preagg.Auditor
	sink.QuarantineStore
	MigrateQuarantine(ctx context.Context) error
	Quarantined(ctx context.Context, site string, limit int) ([]schemas.Quarantined, error)
	VisitorSignals(ctx context.Context, anonymousID string) ([]schemas.Signal, error)
	Signals(ctx context.Context, fromMs, toMs int64) ([]schemas.Signal, error)
	Newest(ctx context.Context, fromMs, toMs int64, n int) ([]schemas.Signal, error)
	lander
}

var (
	_ store = (*sqlite.SQLite)(nil)
	_ store = (*clickhouse.ClickHouse)(nil)
)

// sinkAt says where the telemetry store is: ClickHouse at ClickHouse (its tables sharded
// over Cluster, when named), else the SQLite file telemetry.db in DataDir.
type sinkAt struct {
	ClickHouse, Cluster, DataDir string
}

func (c *pipeConfig) sinkAt() sinkAt {
	return sinkAt{ClickHouse: c.ClickHouse, Cluster: c.ClickHouseCluster, DataDir: c.DataDir}
}

func (at sinkAt) sqlitePath() string { return filepath.Join(at.DataDir, "telemetry.db") }

// String names the store for a log line.
func (at sinkAt) String() string {
	if at.ClickHouse != "" {
		return "clickhouse"
	}
	return "sqlite:" + at.sqlitePath()
}

// openSink opens the telemetry store for every command. A writer (serve, aggregate,
// migrate) creates and migrates the tables. A reader (readOnly: tail, query, reconcile)
// runs no DDL and writes nothing, so pointing it at the wrong
// place leaves nothing behind; it fails with sink.ErrNotMigrated when the tables are not
// there. ClickHouse is waited for (up to a minute for a writer, 30 s for a reader), so a
// command may start before the server does.
func openSink(ctx context.Context, at sinkAt, readOnly bool, set *metrics.Set) (store, error) {
	if at.ClickHouse != "" {
		wait := time.Minute
		if readOnly {
			wait = 30 * time.Second
		}
		octx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		return clickhouse.Open(octx, at.ClickHouse, clickhouse.Options{Cluster: at.Cluster, ReadOnly: readOnly}, set)
	}
	if !readOnly {
		return sqlite.Open(ctx, at.sqlitePath(), set)
	}
	s, err := sqlite.OpenReadOnly(ctx, at.sqlitePath(), set)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no telemetry store at %s (point --data-dir at the one rung serve uses, or give --clickhouse): %w",
			at.sqlitePath(), sink.ErrNotMigrated)
	}
	return s, err
}
