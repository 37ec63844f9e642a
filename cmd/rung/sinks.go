package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/preagg/stats"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/clickhouse"
	"github.com/rungdev/rung/sink/discard"
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
	_ store = (*discard.Sink)(nil)
)

// sinkAt says where the telemetry store is: ClickHouse at ClickHouse (its tables sharded
// over Cluster, when named), else the SQLite file telemetry.db in DataDir.
// Discard, a benchmarking and testing aid, keeps nothing.
type sinkAt struct {
	ClickHouse, Cluster, DataDir string
	Discard                      bool
	// AfterSignals is ClickHouse's failpoint (clickhouse.Options.AfterSignals): see
	// failpoint.
	AfterSignals func()
}

func (c *pipeConfig) sinkAt() sinkAt {
	return sinkAt{ClickHouse: c.ClickHouse, Cluster: c.ClickHouseCluster, DataDir: c.DataDir, Discard: c.Sink == "discard",
		AfterSignals: c.afterSignals}
}

func (at sinkAt) sqlitePath() string { return filepath.Join(at.DataDir, "telemetry.db") }

// String names the store for a log line.
func (at sinkAt) String() string {
	if at.Discard {
		return "discard"
	}
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
	if at.Discard {
		return discard.New(set), nil
	}
	if at.ClickHouse != "" {
		wait := time.Minute
		if readOnly {
			wait = 30 * time.Second
		}
		octx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		return clickhouse.Open(octx, at.ClickHouse, clickhouse.Options{Cluster: at.Cluster, ReadOnly: readOnly,
			AfterSignals: at.AfterSignals}, set)
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

// failpointVar names the failpoint a test may set in a writer's environment:
// "after-signals:N" makes the process SIGKILL itself once the raw rows of the Nth
// ClickHouse write that has any landed, before that write's rollup rows: the moment a
// crash leaves raw rows without rollups. It is no flag: nothing but a test should want
// it.
const failpointVar = "RUNG_FAILPOINT"

// failpoint returns the AfterSignals hook env's failpointVar asks for, nil when none.
func failpoint(env environ) (func(), error) {
	v, ok := env(failpointVar)
	if !ok || v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(v, "after-signals:"))
	if err != nil || n < 1 || !strings.HasPrefix(v, "after-signals:") {
		return nil, fmt.Errorf("%s=%q: want after-signals:N, N at least 1", failpointVar, v)
	}
	var writes atomic.Int64
	return func() {
		if writes.Add(1) == int64(n) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}, nil
}
