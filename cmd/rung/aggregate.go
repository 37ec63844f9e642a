package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/buffer/stream"
	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// aggregateConfig is `rung aggregate`: a cluster worker that owns some partitions of the
// stream and runs them through the sessionizer into the sink.
type aggregateConfig struct {
	pipeConfig
	streamConfig
	Owned   string        `json:"partitions"`
	AckWait time.Duration `json:"ack_wait"`
	Listen  string        `json:"listen"`
	DryRun  bool          `json:"-"`
}

func (c *aggregateConfig) flags(fs *flag.FlagSet) {
	c.pipeConfig.flags(fs)
	c.streamConfig.flags(fs, true)
	fs.StringVar(&c.Owned, "partitions", "", "the partitions this worker owns, e.g. 0-31 or 0-15,40; empty: all of them")
	fs.DurationVar(&c.AckWait, "ack-wait", 30*time.Second, "a signal not acknowledged by then (its worker died) is delivered again, to whoever owns its partition")
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8081", "address for /metrics, /healthz and /readyz")
	fs.BoolVar(&c.DryRun, "dry-run", false, "print the resolved configuration and exit")
}

func (c *aggregateConfig) validate() error {
	errs := append(c.pipeConfig.validate(), c.streamConfig.validate(true)...)
	if _, err := c.owned(); err != nil {
		errs = append(errs, fmt.Errorf("--partitions: %w", err))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("--ack-wait %v: must be at least 1s", c.AckWait))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", c.Listen, err))
	}
	return errors.Join(errs...)
}

// owned returns the partitions the worker owns; all when none are named.
func (c *aggregateConfig) owned() ([]int, error) {
	if c.Owned == "" {
		return stream.ParsePartitions(fmt.Sprintf("0-%d", c.Partitions-1), c.Partitions)
	}
	return stream.ParsePartitions(c.Owned, c.Partitions)
}

// runAggregate consumes the owned partitions: it restores their open sessions from the
// sink, then rolls each batch into them and writes it, and acknowledges the batch only
// once the sink holds it. A batch delivered again (its first write failed half way, or
// its worker died before the ack) is checked against the sink first, so no raw row is
// written twice (see skipStored).
func runAggregate(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	var cfg aggregateConfig
	if done, err := configure("rung aggregate", &cfg, &cfg.DryRun, args, env, stdout); done || err != nil {
		return err
	}
	owned, _ := cfg.owned() // validated
	log := newLogger(cfg.LogLevel)
	set := metrics.NewSet()

	store, err := openSink(ctx, cfg.sinkAt(), false, set)
	if err != nil {
		return err
	}
	defer store.Close()
	nc, js, scfg, err := joinStream(ctx, &cfg.streamConfig, "aggregator", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	agg, restored, err := openAggregator(ctx, &cfg.pipeConfig, store, cfg.Partitions, owned, set)
	if err != nil {
		return err
	}
	health := sink.NewHealth(cfg.sinkAt().String(), store, log, set)
	w := &skipStored{w: health}
	flush := agg.FlushTo(w)
	skipped := set.NewCounter(`rung_aggregate_redelivered_stored_total`)
	dropped := set.NewCounter(`rung_signals_dropped_total{reason="sink_error"}`)
	handle := func(ctx context.Context, signals []schemas.Signal, redelivered []bool) error {
		stored, err := storedOf(ctx, store, signals, redelivered)
		if err != nil {
			return err
		}
		w.stored = stored // the handler runs in one goroutine at a time
		skipped.Add(len(stored))
		err = flush(ctx, signals)
		if class, ok := sink.ClassOf(err); ok && class == sink.Permanent {
			// Redelivered, it would fail the same way for ever: drop it once, counted
			// and logged (Health), and ack it.
			dropped.Add(len(signals) - len(stored))
			return nil
		}
		return err
	}
	consumer, err := stream.NewConsumer(js, stream.ConsumerConfig{
		Stream:        scfg,
		Partitions:    owned,
		BatchSize:     cfg.BatchSize,
		FlushInterval: cfg.FlushInterval,
		AckWait:       cfg.AckWait,
		Logger:        log,
	}, handle, set)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	sup := &supervisor{log: log}
	ping := func(ctx context.Context) error {
		if sup.Stopping() {
			return errors.New("shutting down")
		}
		return health.Ready(ctx)
	}
	web := &http.Server{Handler: aggregateMux(set, ping, nc.IsConnected), ReadHeaderTimeout: 5 * time.Second}
	log.Info("rung aggregating", "addr", ln.Addr().String(), "sink", cfg.sinkAt(),
		"stream", scfg.Name, "partitions", len(owned), "sessions_restored", restored)

	// Stop order: the consumer stops fetching and flushes what it holds (acking it once
	// the sink has it) while the HTTP side stops; NATS and the sink close last
	// (deferred), after both.
	sup.then("stop consuming", part{"consumer", consumer.Run}, httpPart("listener", web, ln, 5*time.Second))
	err = sup.Run(ctx)
	log.Info("rung aggregate stopped")
	return err
}

// lander says which signals the sink already holds.
type lander interface {
	Landed(ctx context.Context, signals []schemas.Signal) (map[sink.Key]bool, error)
}

// storedOf returns the keys of the redelivered signals whose raw rows the sink already
// holds. A batch with no redelivery costs no lookup.
func storedOf(ctx context.Context, s lander, signals []schemas.Signal, redelivered []bool) (map[sink.Key]bool, error) {
	var again []schemas.Signal
	for i, r := range redelivered {
		if r {
			again = append(again, signals[i])
		}
	}
	if len(again) == 0 {
		return nil, nil
	}
	held, err := s.Landed(ctx, again)
	if err != nil {
		return nil, fmt.Errorf("check %d redelivered signals against the sink: %w", len(again), err)
	}
	return held, nil
}

// skipStored is the aggregator's writer. A batch JetStream delivered again may hold
// signals whose raw rows the sink stored on the first delivery, before the rollups
// failed or the worker died. Those signals still go through the sessionizer (which
// undid them when the first write failed, or knows them already when it restored their
// session after a crash), and every rollup row is written (they are absolute and
// versioned: a second write changes nothing), but their raw rows are not written again.
type skipStored struct {
	w      preagg.Writer
	stored map[sink.Key]bool // signals whose raw rows are stored; set per batch
}

func (s *skipStored) Write(ctx context.Context, b *sink.Batch) error {
	if len(s.stored) == 0 {
		return s.w.Write(ctx, b)
	}
	kept := sink.Batch{Landing: b.Landing, Exposures: b.Exposures, Conversions: b.Conversions}
	for i := range b.Signals {
		if !s.stored[sink.KeyOf(&b.Signals[i])] {
			kept.Signals = append(kept.Signals, b.Signals[i])
			kept.SessionMs = append(kept.SessionMs, b.SessionOf(i))
		}
	}
	return s.w.Write(ctx, &kept)
}

// aggregateMux serves an aggregator's /metrics, /healthz and /readyz.
func aggregateMux(set *metrics.Set, ping func(context.Context) error, connected func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		set.WritePrometheus(w)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !connected() {
			http.Error(w, "not connected to NATS", http.StatusServiceUnavailable)
			return
		}
		if err := ping(r.Context()); err != nil {
			http.Error(w, "sink: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}
