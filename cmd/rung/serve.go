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
	"github.com/nats-io/nats.go"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/buffer/stream"
	"github.com/rungdev/rung/buffer/wal"
	"github.com/rungdev/rung/collector"
	"github.com/rungdev/rung/collector/snippet"
	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/preagg/dashboard"
	"github.com/rungdev/rung/preagg/stats"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/stitch"
	"github.com/rungdev/rung/stitch/outbox"
	"github.com/rungdev/rung/tiers/place"
)

func runServe(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	var cfg serveConfig
	if done, err := configure("rung serve", &cfg, &cfg.DryRun, args, env, stdout); done || err != nil {
		return err
	}
	hook, err := failpoint(env)
	if err != nil {
		return err
	}
	cfg.afterSignals = hook
	_, own := env("GOMEMLIMIT") // the runtime's own limit, when set, stands
	cfg.memoryLimit = !own
	return serve(ctx, &cfg, newLogger(cfg.LogLevel), listenTCP)
}

// listenFunc opens a listener on addr; tests pass one that hands them the listeners.
type listenFunc func(addr string) (net.Listener, error)

func listenTCP(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// serve builds serve's parts and runs them under one supervisor until ctx ends or a
// part fails. The stop order is: stop accepting (both listeners; Serve returns once
// handlers are done) → drain the buffer into the sink within --drain-timeout (a cluster
// collector waits for its publishes' acks instead) → flush the quarantine writer → stop
// the embedded relay → close the business database, NATS and the sink. A shutdown that
// dropped accepted signals returns an error, as does any part failing.
func serve(ctx context.Context, cfg *serveConfig, log *slog.Logger, listen listenFunc) (err error) {
	if cfg.ClickHouse == "" || cfg.Relay || cfg.Durability == "disk" { // the data directory holds a store or the log
		lock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return err
		}
		defer lock.Close() // releases the lock, after everything else has closed
	}
	set := metrics.NewSet()
	reg, err := schemas.NewRegistry()
	if err != nil {
		return err
	}
	store, err := openSink(ctx, cfg.sinkAt(), false, set)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeWith("close the sink", store.Close)) }()

	sup := &supervisor{log: log}
	in, err := openIntake(ctx, cfg, store, set, log)
	if err != nil {
		return err
	}
	if in.nc != nil {
		defer in.nc.Close()
	}
	if in.wlog != nil {
		defer func() { err = errors.Join(err, closeWith("close the write-ahead log", in.wlog.Close)) }()
	}

	cookie := "" // the dashboard offers to sign out only where there is signing in
	if cfg.APIToken != "" {
		cookie = collector.SessionCookie
	}
	mounts, lookup, err := serveMounts(store, log, preagg.ParseGoals(cfg.Goals), cfg.Quarantine, cookie)
	if err != nil {
		return err
	}
	var quarantine *sink.Quarantine
	if cfg.Quarantine {
		if err := store.MigrateQuarantine(ctx); err != nil {
			return err
		}
		quarantine = sink.NewQuarantine(store, time.Duration(cfg.QuarantineDays)*24*time.Hour, set)
	}
	ccfg := cfg.collectorConfig()
	if quarantine != nil {
		ccfg.Quarantine = quarantine.Keep
	}
	if in.buf != nil {
		ccfg.Admits = in.buf.Admits
	}
	ready := func(ctx context.Context) error {
		if sup.Stopping() {
			return errors.New("shutting down")
		}
		return in.ready(ctx)
	}
	srv := collector.New(ccfg, reg, in.intake, ready, set, log, mounts...)
	srv.AddMetrics(lookup.WriteMetrics)

	// The embedded business database: lead_created rows written to its outbox are
	// projected straight into its events table. With a broker, `rung relay` does this.
	var pipe *outbox.Pipeline
	if cfg.Relay { // the data directory exists: serve locked it
		pipe, err = outbox.OpenPipeline(ctx, outbox.PipelineConfig{
			SQLitePath: filepath.Join(cfg.DataDir, outbox.BusinessDBFile), Logger: log})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, closeWith("close the business database", pipe.Close)) }()
		srv.AddMetrics(pipe.WriteMetrics)
	}

	ln, err := listen(cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	// fasthttp's shutdown closes a connection waiting for its next request at once, but
	// one that has not sent its first request only once it is 5 s old, as net/http does:
	// a client's spare connection, opened just before the signal, must not outlast the
	// grace and fail the shutdown.
	const grace = 7 * time.Second
	accept := []part{{"public listener", func(ctx context.Context) error { return srv.Serve(ctx, ln, grace) }}}
	if cfg.AdminListen != "" {
		aln, err := listen(cfg.AdminListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s: %w", cfg.AdminListen, err)
		}
		accept = append(accept, part{"admin listener", func(ctx context.Context) error { return srv.ServeAdmin(ctx, aln, grace) }})
		log.Info("rung admin surfaces", "addr", aln.Addr().String())
	}
	sup.then("stop accepting", accept...)
	sup.then("drain", in.drain(cfg.DrainTimeout, log))
	if quarantine != nil {
		sup.then("quarantine", part{"quarantine writer", func(ctx context.Context) error { quarantine.Run(ctx); return nil }})
	}
	if pipe != nil {
		sup.then("relay", part{"outbox relay", pipe.Run})
	}
	if cfg.memoryLimit && in.buf != nil {
		m := newMemoryLimit(in.bcfg, store, in.open)
		sup.then("memory limit", part{"memory limit", func(ctx context.Context) error { return m.run(ctx, set, log) }})
	}
	log.Info("rung serving", "addr", ln.Addr().String(), "sink", cfg.sinkAt(), "sessions_restored", in.restored)
	if cfg.privateOpen() {
		log.Warn("--insecure-public-stats: " + privateSurfaces + " are open to anyone who can reach this address")
	}
	err = sup.Run(ctx)
	log.Info("rung stopped")
	return err
}

// closeWith closes something at the end of a command and names it in the error.
func closeWith(what string, close func() error) error {
	if err := close(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// intake is where the collector puts accepted signals, and how it is drained.
type intake struct {
	intake   collector.Intake
	ready    func(context.Context) error
	buf      *buffer.Buffer    // one node
	bcfg     buffer.Config     // one node: the buffer's
	open     func() int        // one node: the sessions open
	pub      *stream.Publisher // a cluster collector
	nc       *nats.Conn        // a cluster collector's, closed last
	wlog     *wal.Log          // --durability disk: closed after the drain, before the sink
	restored int               // sessions restored from the store
}

// openIntake makes the intake. One node: the buffer flushes through the sessionizer
// into the store. A cluster collector (--nats) keeps nothing: JetStream holds each
// signal before the 202, and `rung aggregate` rolls them up.
func openIntake(ctx context.Context, cfg *serveConfig, store store, set *metrics.Set, log *slog.Logger) (*intake, error) {
	if cfg.NATS != "" {
		nc, js, scfg, err := joinStream(ctx, &cfg.streamConfig, "collector", log)
		if err != nil {
			return nil, err
		}
		pub, err := stream.NewPublisher(nc, stream.PublisherConfig{Stream: scfg, Timeout: cfg.PublishTimeout,
			Linger: cfg.Linger, MaxMessageBytes: cfg.MessageBytes}, set)
		if err != nil {
			nc.Close()
			return nil, err
		}
		return &intake{intake: pub, ready: streamReady(nc, js, scfg.Name), pub: pub, nc: nc}, nil
	}
	// The sessionizer runs inside the buffer's flushers, sharded as the buffer is: each
	// flusher has a lane of shards to itself.
	agg, n, err := openAggregator(ctx, &cfg.pipeConfig, store, sessionShards, nil, set)
	if err != nil {
		return nil, err
	}
	if recounted, err := recount(ctx, &cfg.pipeConfig, agg, store, sink.ResumeScope{}.Owner()); err != nil {
		return nil, err
	} else if recounted > 0 {
		log.Info("signals stored without their rollups by the last run counted", "signals", recounted)
	}
	policy, _ := buffer.ParsePolicy(cfg.WhenFull) // validated
	// --durability disk: a write-ahead log; what it held from the last run is delivered
	// before anything is served.
	var wlog *wal.Log
	if cfg.Durability == "disk" {
		var replayed int
		if wlog, replayed, err = openLog(ctx, cfg, agg, store, set, log); err != nil {
			return nil, err
		}
		log.Info("write-ahead log replayed", "signals", replayed)
	}
	health := sink.NewHealth(cfg.sinkAt().String(), store, log, set)
	bcfg := buffer.Config{
		BatchSize:     cfg.BatchSize,
		FlushInterval: cfg.FlushInterval,
		MaxBytes:      cfg.BufferBytes,
		WhenFull:      policy,
		FullWait:      cfg.FullWait,
		Shards:        sessionShards,
		Flushers:      sessionLanes,
		Done:          logDone(wlog),
	}
	buf := buffer.New(bcfg, agg.FlushTo(health), set)
	return &intake{intake: newIntake(buf, wlog, policy, set), ready: health.Ready, buf: buf, bcfg: bcfg, open: agg.Open,
		wlog: wlog, restored: n}, nil
}

// drain is the intake's part: it runs the buffer's flushers and, asked to stop (once
// nothing is accepted any more), drains the buffer into the sink, hard-stopping at the
// deadline. Any accepted signal dropped while stopping (the deadline passed, the sink
// gave up) makes it an error. A cluster collector's publisher waits for its acks.
func (in *intake) drain(deadline time.Duration, log *slog.Logger) part {
	if in.pub != nil {
		return closer("publisher", func() error { in.pub.Close(); return nil })
	}
	buf := in.buf
	return part{"buffer", func(ctx context.Context) error {
		flushCtx, hardStop := context.WithCancel(context.Background())
		defer hardStop()
		done := make(chan error, 1)
		go func() { done <- buf.Run(flushCtx) }()
		select {
		case err := <-done:
			return fmt.Errorf("flushers stopped: %w", err)
		case <-ctx.Done():
		}
		before := buf.Dropped()
		log.Info("stopped accepting; draining the buffer", "held", buf.Held())
		buf.Close()
		timer := time.NewTimer(deadline)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			log.Warn("drain timeout: counting what is left as dropped", "held", buf.Held())
			hardStop()
			<-done
		}
		if n := buf.Dropped() - before; n > 0 {
			return fmt.Errorf("%d accepted signals dropped while stopping (rung_signals_dropped_total says why)", n)
		}
		return nil
	}}
}

// serveMounts are the slower surfaces beside /collect: the private ones (attribution
// lookup, stats API, dashboard, pprof, and the quarantine when it is kept) and the public
// placement pages and tracker. sessionCookie names the sign-in cookie, "" when there is
// no signing in.
func serveMounts(store store, log *slog.Logger, goals []string, quarantine bool, sessionCookie string) ([]collector.Mount, *stitch.Lookup, error) {
	placer, err := place.New()
	if err != nil {
		return nil, nil, err
	}
	lookup, err := stitch.NewLookup(store, stitch.LookupConfig{})
	if err != nil {
		return nil, nil, err
	}
	dash := dashboard.New(stats.NewQueries(store, stats.Options{Goals: goals}), log, dashboard.Options{SessionCookie: sessionCookie})
	pages := dash.Pages()
	mounts := []collector.Mount{
		{Prefix: "/v1/visitors/", Handler: lookup.Handler(), Private: true},
		{Prefix: "/v1/stats/", Handler: dash.API(), Private: true},
		{Prefix: "/", Exact: true, Handler: pages, Private: true},
		{Prefix: "/experiments/", Handler: pages, Private: true},
		{Prefix: "/referrers", Handler: pages, Private: true},
		{Prefix: "/debug/pprof/", Handler: pprofHandler(), Private: true},
	}
	if quarantine {
		mounts = append(mounts, collector.Mount{Prefix: "/v1/quarantine", Handler: collector.QuarantineHandler(store.Quarantined), Private: true})
	}
	placement := placer.Handler(log)
	for _, p := range place.Paths() {
		mounts = append(mounts, collector.Mount{Prefix: p, Handler: placement})
	}
	web, err := snippet.New(snippet.Options{})
	if err != nil {
		return nil, nil, err
	}
	for _, p := range web.Paths() {
		mounts = append(mounts, collector.Mount{Prefix: p, Handler: web})
	}
	return mounts, lookup, nil
}

// collectorConfig is the collector's part of serve's configuration.
func (c *serveConfig) collectorConfig() collector.Config {
	sites, _ := collector.ParseSites(c.Sites) // validated
	return collector.Config{
		MaxBodyBytes:     c.MaxBodyBytes,
		MaxBatch:         c.MaxBatch,
		AllowedOrigins:   c.origins(),
		APIToken:         c.APIToken,
		SecureCookie:     c.SecureCookie,
		RateIP:           c.RateIP,
		RateIPBurst:      c.RateIPBurst,
		RateIPDelay:      c.RateIPDelay,
		RateSite:         c.RateSite,
		Sites:            sites,
		DropBots:         c.Bots == "drop",
		AdminSeparate:    c.AdminListen != "",
		ReadTimeout:      c.ReadTimeout,
		IdleTimeout:      c.IdleTimeout,
		MaxConns:         c.MaxConns,
		MaxConnsPerIP:    c.MaxConnsPerIP,
		MaxHeaderBytes:   c.MaxHeaderBytes,
		QuarantineSample: c.QuarantineSample,
		QuarantineRate:   c.QuarantineRate,
	}
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
	if hw, ok := s.(halfWritten); ok {
		if err := hw.WaitInserts(ctx); err != nil {
			return nil, 0, err
		}
	}
	n, err := agg.Restore(ctx, s, owned)
	if err != nil {
		return nil, 0, fmt.Errorf("restore open sessions: %w", err)
	}
	return agg, n, nil
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
