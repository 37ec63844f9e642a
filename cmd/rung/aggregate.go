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
// once the sink holds it. Every batch is checked against the sink first (see fresh), so
// no (site, anonymous_id, event_id) is stored twice: not a batch delivered again (its
// first write failed half way, or its worker died before the ack), nor a client's
// resend of a signal whose 202 it never saw.
func runAggregate(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	var cfg aggregateConfig
	if done, err := configure("rung aggregate", &cfg, &cfg.DryRun, args, env, stdout); done || err != nil {
		return err
	}
	owned, _ := cfg.owned() // validated
	log := newLogger(cfg.LogLevel)
	set := metrics.NewSet()

	hook, err := failpoint(env)
	if err != nil {
		return err
	}
	cfg.afterSignals = hook
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
	owns := sink.ResumeScope{Partitions: cfg.Partitions, Owned: owned}.Owner()
	atStart, err := recount(ctx, &cfg.pipeConfig, agg, store, owns)
	if err != nil {
		return err
	}
	health := sink.NewHealth(cfg.sinkAt().String(), store, log, set)
	w := &skipStored{w: health}
	flush := agg.FlushTo(w)
	dups := set.NewCounter(`rung_aggregate_duplicates_total`)
	recounted := set.NewCounter(`rung_aggregate_recounted_total`)
	recounted.Add(atStart)
	dropped := set.NewCounter(`rung_signals_dropped_total{reason="sink_error"}`)
	handle := func(ctx context.Context, signals []schemas.Signal, _ []bool) error {
		kept, stored, n, err := fresh(ctx, store, signals)
		if err != nil {
			return err
		}
		dups.Add(n)
		recounted.Add(len(stored))
		w.stored = stored // the handler runs in one goroutine at a time
		err = flush(ctx, kept)
		if class, ok := sink.ClassOf(err); ok && class == sink.Permanent {
			// Redelivered, it would fail the same way for ever: drop it once, counted
			// and logged (Health), and ack it.
			dropped.Add(len(kept) - len(stored))
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
		"stream", scfg.Name, "partitions", len(owned), "sessions_restored", restored, "recounted", atStart)

	// Stop order: the consumer stops fetching and flushes what it holds (acking it once
	// the sink has it) while the HTTP side stops; NATS and the sink close last
	// (deferred), after both.
	sup.then("stop consuming", part{"consumer", consumer.Run}, httpPart("listener", web, ln, 5*time.Second))
	err = sup.Run(ctx)
	log.Info("rung aggregate stopped")
	return err
}

// lander says which signals the sink already holds, and whether their rollups too.
type lander interface {
	Landed(ctx context.Context, signals []schemas.Signal) (map[sink.Key]bool, error)
}

// fresh makes a batch fit for the sessionizer, in place: it drops the signals the sink
// holds and has counted (a redelivery, or a client's resend after an answer it never
// saw or an unsure 503) and every later copy of a (visitor, event_id) within the batch.
// It returns the signals kept; the keys of those among them whose raw rows the sink
// holds but whose rollups it does not (a write cut between the two), which are
// counted again without their raw rows being written again (see skipStored); and how
// many it dropped. Every batch costs one lookup: a resend comes in any message, not
// only in redelivered ones.
func fresh(ctx context.Context, s lander, signals []schemas.Signal) ([]schemas.Signal, map[sink.Key]bool, int, error) {
	held, err := s.Landed(ctx, signals)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("check %d signals against the sink: %w", len(signals), err)
	}
	seen := make(map[sink.Key]bool, len(signals))
	var stored map[sink.Key]bool
	kept := signals[:0]
	for i := range signals {
		k := sink.KeyOf(&signals[i])
		if k.EventID != "" {
			counted, ok := held[k]
			if seen[k] || counted {
				continue
			}
			seen[k] = true
			if ok {
				if stored == nil {
					stored = make(map[sink.Key]bool)
				}
				stored[k] = true
			}
		}
		kept = append(kept, signals[i])
	}
	n := len(signals) - len(kept)
	clear(signals[len(kept):]) // no strings pinned past the batch
	return kept, stored, n, nil
}

// skipStored is the writer of the aggregator, of the write-ahead log's replay and of the
// recount at start. A batch delivered again (by JetStream, or replayed from the log) may
// hold signals whose raw rows the sink stored on the first delivery, before the rollups
// failed or the process died. Those signals still go through the sessionizer (which
// undid them when the first write failed, and left them out when it restored the
// sessions after a crash, see sink.Resume), and their rollups are written, but their
// raw rows are not written again: they go in the batch's Counted instead.
type skipStored struct {
	w      preagg.Writer
	stored map[sink.Key]bool // signals whose raw rows are stored; set per batch
}

func (s *skipStored) Write(ctx context.Context, b *sink.Batch) error {
	if len(s.stored) == 0 {
		return s.w.Write(ctx, b)
	}
	kept := sink.Batch{Landing: b.Landing, Exposures: b.Exposures, Conversions: b.Conversions, Counted: b.Counted}
	for i := range b.Signals {
		if !s.stored[sink.KeyOf(&b.Signals[i])] {
			kept.Signals = append(kept.Signals, b.Signals[i])
			kept.SessionMs = append(kept.SessionMs, b.SessionOf(i))
		} else {
			kept.Counted = append(kept.Counted, b.Signals[i])
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
