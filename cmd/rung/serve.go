package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/buffer/stream"
	"github.com/rungdev/rung/collector"
	"github.com/rungdev/rung/collector/snippet"
	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/preagg/dashboard"
	"github.com/rungdev/rung/preagg/stats"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/clickhouse"
	"github.com/rungdev/rung/sink/sqlite"
	"github.com/rungdev/rung/stitch"
	"github.com/rungdev/rung/stitch/outbox"
	"github.com/rungdev/rung/tiers/place"
)

func runServe(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	var cfg serveConfig
	if done, err := configure("rung serve", &cfg, &cfg.DryRun, args, env, stdout); done || err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	set := metrics.NewSet()

	reg, err := schemas.NewRegistry()
	if err != nil {
		return err
	}
	store, err := openSink(ctx, &cfg.pipeConfig, set)
	if err != nil {
		return err
	}
	defer store.Close()

	// One node: the buffer flushes through the sessionizer into the store. A cluster
	// collector (--nats) keeps nothing: JetStream holds each signal before the 202, and
	// `rung aggregate` rolls them up.
	var (
		intake   collector.Intake
		ready    = store.Ping
		buf      *buffer.Buffer
		pub      *stream.Publisher
		restored int
	)
	if cfg.NATS != "" {
		nc, js, scfg, err := joinStream(ctx, &cfg.streamConfig, "collector", log)
		if err != nil {
			return err
		}
		defer nc.Close()
		pub, err = stream.NewPublisher(nc, stream.PublisherConfig{Stream: scfg, Timeout: cfg.PublishTimeout,
			Linger: cfg.Linger, MaxMessageBytes: cfg.MessageBytes}, set)
		if err != nil {
			return err
		}
		intake, ready = pub, streamReady(nc, js, scfg.Name)
	} else {
		// The sessionizer runs inside the buffer's flushers, sharded as the buffer is:
		// each flusher has a lane of shards to itself.
		agg, n, err := openAggregator(ctx, &cfg.pipeConfig, store, sessionShards, nil, set)
		if err != nil {
			return err
		}
		health := sink.NewHealth(sinkName(&cfg.pipeConfig), store, log, set)
		ready = health.Ready
		policy, _ := buffer.ParsePolicy(cfg.WhenFull)
		buf = buffer.New(buffer.Config{
			BatchSize:     cfg.BatchSize,
			FlushInterval: cfg.FlushInterval,
			MaxBytes:      cfg.BufferBytes,
			WhenFull:      policy,
			Shards:        sessionShards,
			Flushers:      sessionLanes,
		}, agg.FlushTo(health), set)
		intake, restored = buf, n
	}

	placer, err := place.New()
	if err != nil {
		return err
	}
	lookup, err := stitch.NewLookup(store, stitch.LookupConfig{})
	if err != nil {
		return err
	}
	dash := dashboard.New(stats.NewQueries(store, stats.Options{}), log, dashboard.Options{})
	pages := dash.Pages()
	mounts := []collector.Mount{
		{Prefix: "/v1/visitors/", Handler: lookup.Handler(), Private: true},
		{Prefix: "/v1/stats/", Handler: dash.API(), Private: true},
		{Prefix: "/", Exact: true, Handler: pages, Private: true},
		{Prefix: "/experiments/", Handler: pages, Private: true},
		{Prefix: "/referrers", Handler: pages, Private: true},
		{Prefix: "/debug/pprof/", Handler: pprofHandler(), Private: true},
	}
	placement := placer.Handler(log)
	for _, p := range place.Paths() {
		mounts = append(mounts, collector.Mount{Prefix: p, Handler: placement})
	}
	web, err := snippet.New(snippet.Options{})
	if err != nil {
		return err
	}
	for _, p := range web.Paths() {
		mounts = append(mounts, collector.Mount{Prefix: p, Handler: web})
	}
	var quarantine *sink.Quarantine
	if cfg.Quarantine {
		if err := store.MigrateQuarantine(ctx); err != nil {
			return err
		}
		quarantine = sink.NewQuarantine(store, time.Duration(cfg.QuarantineDays)*24*time.Hour, set)
		mounts = append(mounts, collector.Mount{Prefix: "/v1/quarantine", Handler: collector.QuarantineHandler(store.Quarantined), Private: true})
	}
	sites, _ := collector.ParseSites(cfg.Sites) // validated
	ccfg := collector.Config{
		MaxBodyBytes:     cfg.MaxBodyBytes,
		MaxBatch:         cfg.MaxBatch,
		AllowedOrigins:   cfg.origins(),
		APIToken:         cfg.APIToken,
		RateIP:           cfg.RateIP,
		RateIPBurst:      cfg.RateIPBurst,
		RateIPDelay:      cfg.RateIPDelay,
		RateSite:         cfg.RateSite,
		Sites:            sites,
		DropBots:         cfg.Bots == "drop",
		AdminSeparate:    cfg.AdminListen != "",
		ReadTimeout:      cfg.ReadTimeout,
		IdleTimeout:      cfg.IdleTimeout,
		MaxConns:         cfg.MaxConns,
		MaxConnsPerIP:    cfg.MaxConnsPerIP,
		MaxHeaderBytes:   cfg.MaxHeaderBytes,
		QuarantineSample: cfg.QuarantineSample,
		QuarantineRate:   cfg.QuarantineRate,
	}
	if quarantine != nil {
		ccfg.Quarantine = quarantine.Keep
	}
	srv := collector.New(ccfg, reg, intake, ready, set, log, mounts...)
	srv.AddMetrics(lookup.WriteMetrics)

	// The embedded business database: lead_created rows written to its outbox are
	// projected straight into its events table. With a broker, `rung relay` does this.
	var pipe *outbox.Pipeline
	if cfg.Relay {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("create --data-dir: %w", err)
		}
		pipe, err = outbox.OpenPipeline(ctx, outbox.PipelineConfig{
			SQLitePath: filepath.Join(cfg.DataDir, outbox.BusinessDBFile), Logger: log})
		if err != nil {
			return err
		}
		defer pipe.Close()
		srv.AddMetrics(pipe.WriteMetrics)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	adminDone := make(chan error, 1)
	if cfg.AdminListen != "" {
		aln, err := net.Listen("tcp", cfg.AdminListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s: %w", cfg.AdminListen, err)
		}
		go func() { adminDone <- srv.ServeAdmin(ctx, aln, 5*time.Second) }()
		log.Info("rung admin surfaces", "addr", aln.Addr().String())
	} else {
		adminDone <- nil
	}
	log.Info("rung serving", "addr", ln.Addr().String(), "sink", sinkName(&cfg.pipeConfig), "sessions_restored", restored)

	// Shutdown order: stop accepting (Serve returns once handlers are done), close the
	// buffer, drain it into the sink within the drain timeout, then close the sink. A
	// cluster collector has no buffer: its publisher waits for the acks in flight.
	flushCtx, hardStop := context.WithCancel(context.Background())
	defer hardStop()
	drained := make(chan error, 1)
	if buf != nil {
		go func() { drained <- buf.Run(flushCtx) }()
	} else {
		drained <- nil
	}
	quarantineCtx, stopQuarantine := context.WithCancel(context.Background())
	quarantined := make(chan struct{})
	if quarantine != nil {
		go func() { defer close(quarantined); quarantine.Run(quarantineCtx) }()
	} else {
		close(quarantined)
	}
	relayCtx, stopRelay := context.WithCancel(context.Background())
	relayed := make(chan error, 1)
	if pipe != nil {
		go func() { relayed <- pipe.Run(relayCtx) }()
	} else {
		relayed <- nil
	}

	serveErr := srv.Serve(ctx, ln, 5*time.Second)
	if err := <-adminDone; err != nil && serveErr == nil {
		serveErr = err
	}
	if pub != nil {
		pub.Close()
	} else {
		log.Info("stopped accepting; draining the buffer", "held", buf.Held())
		buf.Close()
		select {
		case <-drained:
		case <-time.After(cfg.DrainTimeout):
			log.Warn("drain timeout: counting what is left as dropped", "held", buf.Held())
			hardStop()
			<-drained
		}
	}
	stopQuarantine()
	<-quarantined
	stopRelay()
	if err := <-relayed; err != nil && !errors.Is(err, context.Canceled) {
		log.Error("outbox relay", "err", err)
	}
	log.Info("rung stopped")
	if serveErr != nil && !errors.Is(serveErr, context.Canceled) {
		return serveErr
	}
	return nil
}

// store is what serve needs of a sink: writes, readiness, reading a visitor back, the
// rollups and the open sessions.
type store interface {
	sink.Sink
	stats.Reader
	preagg.Resumer
	sink.QuarantineStore
	MigrateQuarantine(ctx context.Context) error
	Quarantined(ctx context.Context, site string, limit int) ([]schemas.Quarantined, error)
	VisitorSignals(ctx context.Context, anonymousID string) ([]schemas.Signal, error)
	lander
}

// The sessionizer's shards on one node, and its lanes: the buffer's flushers. In a
// cluster, an aggregator has one shard per partition of the stream.
const sessionShards, sessionLanes = 64, 4

// openAggregator makes the sessionizer with one shard per partition, and restores the
// sessions that may still be open in the partitions it owns (nil: all).
func openAggregator(ctx context.Context, c *pipeConfig, s store, partitions int, owned []int, set *metrics.Set) (*preagg.Aggregator, int, error) {
	agg, err := preagg.New(preagg.Config{
		SessionTimeout:  c.SessionTimeout,
		Goals:           preagg.ParseGoals(c.Goals),
		Shards:          partitions,
		Lanes:           min(sessionLanes, partitions),
		MaxOpenSessions: c.MaxOpenSessions,
	}, set)
	if err != nil {
		return nil, 0, err
	}
	n, err := agg.Restore(ctx, s, owned)
	if err != nil {
		return nil, 0, fmt.Errorf("restore open sessions: %w", err)
	}
	return agg, n, nil
}

func openSink(ctx context.Context, cfg *pipeConfig, set *metrics.Set) (store, error) {
	if cfg.ClickHouse != "" {
		octx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		return clickhouse.Open(octx, cfg.ClickHouse, clickhouse.Options{Cluster: cfg.ClickHouseCluster}, set)
	}
	return sqlite.Open(ctx, filepath.Join(cfg.DataDir, "telemetry.db"), set)
}

func sinkName(cfg *pipeConfig) string {
	if cfg.ClickHouse != "" {
		return "clickhouse"
	}
	return "sqlite:" + filepath.Join(cfg.DataDir, "telemetry.db")
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated already
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// pprofHandler serves the runtime profiles on a private path, to find where the time
// goes in production rather than guess.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
