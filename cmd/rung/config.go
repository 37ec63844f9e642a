package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/collector"
	"github.com/rungdev/rung/preagg"
)

// serveConfig is everything `rung serve` can be told, filled from flags and RUNG_*
// variables, validated once.
type serveConfig struct {
	pipeConfig
	streamConfig
	publishConfig
	Listen           string        `json:"listen"`
	BufferBytes      int64         `json:"buffer_bytes"`
	WhenFull         string        `json:"when_full"`
	FullWait         time.Duration `json:"full_wait"`
	Durability       string        `json:"durability"`
	WALBytes         int64         `json:"wal_bytes"`
	AllowedOrigins   string        `json:"allowed_origins"`
	MaxBodyBytes     int           `json:"max_body_bytes"`
	MaxBatch         int           `json:"max_batch"`
	APIToken         string        `json:"-"`
	InsecurePublic   bool          `json:"insecure_public_stats"`
	SecureCookie     bool          `json:"secure_cookie"`
	DrainTimeout     time.Duration `json:"drain_timeout"`
	Relay            bool          `json:"relay"`
	Quarantine       bool          `json:"quarantine"`
	QuarantineSample int           `json:"quarantine_sample"`
	QuarantineRate   float64       `json:"quarantine_rate"`
	QuarantineDays   int           `json:"quarantine_days"`
	AdminListen      string        `json:"admin_listen"`
	RateIP           float64       `json:"rate_ip"`
	RateIPBurst      float64       `json:"rate_ip_burst"`
	RateSite         float64       `json:"rate_site"`
	Sites            string        `json:"sites"`
	Bots             string        `json:"bots"`
	ReadTimeout      time.Duration `json:"read_timeout"`
	IdleTimeout      time.Duration `json:"idle_timeout"`
	MaxConns         int           `json:"max_conns"`
	MaxConnsPerIP    int           `json:"max_conns_per_ip"`
	RateIPDelay      time.Duration `json:"rate_ip_delay"`
	MaxHeaderBytes   int           `json:"max_header_bytes"`
	DryRun           bool          `json:"-"`
	// memoryLimit: serve sets the runtime's soft memory limit (memory.go); not when
	// GOMEMLIMIT is set, nor in tests that run serve in their own process.
	memoryLimit bool
}

func (c *serveConfig) flags(fs *flag.FlagSet) {
	c.pipeConfig.flags(fs)
	c.streamConfig.flags(fs, false)
	c.publishConfig.flags(fs)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "address for HTTP: /collect, the API, the pages")
	fs.Int64Var(&c.BufferBytes, "buffer-bytes", 128<<20, "memory bound of the buffer, in bytes")
	fs.StringVar(&c.WhenFull, "when-full", "reject", "full buffer: reject (503 + Retry-After) or drop (202, counted)")
	fs.DurationVar(&c.FullWait, "full-wait", 250*time.Millisecond, "full buffer, --when-full reject: how long a body waits for a flush to make room before it is decoded, and again once decoded, before it is refused (0: refuse at once); paces clients that retry at once, leaving the CPU to the flush")
	fs.StringVar(&c.Durability, "durability", "memory", "what a 202 means on one node: memory (held in the buffer; lost in a crash) or disk (synced to a write-ahead log under --data-dir/wal, replayed at start)")
	fs.Int64Var(&c.WALBytes, "wal-bytes", 1<<30, "bound of the write-ahead log (--durability disk), in bytes; when full, --when-full applies")
	fs.StringVar(&c.AllowedOrigins, "allowed-origins", "*", "comma-separated origins allowed to post signals, or *")
	fs.IntVar(&c.MaxBodyBytes, "max-body-bytes", 1<<20, "largest /collect body")
	fs.IntVar(&c.MaxBatch, "max-batch", 500, "most signals in one /collect body")
	fs.StringVar(&c.APIToken, "api-token", "", "token for the private surfaces: API callers send Authorization: Bearer TOKEN, browsers sign in at /signin; empty: open")
	fs.BoolVar(&c.SecureCookie, "secure-cookie", false, "always mark the sign-in cookie Secure (it is already when a request comes over HTTPS, or with X-Forwarded-Proto: https from a proxy)")
	fs.BoolVar(&c.InsecurePublic, "insecure-public-stats", false, "serve the private surfaces without --api-token on a non-loopback address (refused otherwise)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 30*time.Second, "on shutdown, how long to drain the buffer into the sink before counting the rest as dropped")
	fs.StringVar(&c.AdminListen, "admin-listen", "", "a separate address for /metrics, the stats API and the dashboard; empty: on --listen, behind --api-token")
	fs.Float64Var(&c.RateIP, "rate-ip", 0, "requests/s allowed per client address on /collect (429 beyond); 0: no limit")
	fs.Float64Var(&c.RateIPBurst, "rate-ip-burst", 0, "burst of --rate-ip; 0: one second's worth")
	fs.DurationVar(&c.RateIPDelay, "rate-ip-delay", 0, "hold each 429 of --rate-ip this long before sending it, to slow a flood that waits for answers; 0: answer at once")
	fs.Float64Var(&c.RateSite, "rate-site", 0, "signals/s allowed per site (429 beyond, burst 10 s); 0: no limit")
	fs.StringVar(&c.Sites, "sites", "", "sites collected for, comma-separated, each optionally site=origin|origin; signals for others are refused; empty: any site")
	fs.StringVar(&c.Bots, "bots", "flag", "signals from bots (user agent): flag (stored with bot=1, left out of stats) or drop (refused, counted)")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", 10*time.Second, "longest a client may take to send a whole request: cuts off slow (slowloris) clients")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", 60*time.Second, "longest a keep-alive connection may sit idle")
	fs.IntVar(&c.MaxConns, "max-conns", 10000, "most concurrent connections")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", 0, "most concurrent connections from one client address (429 beyond); 0: no cap")
	fs.IntVar(&c.MaxHeaderBytes, "max-header-bytes", 8192, "largest request head (431 beyond)")
	fs.BoolVar(&c.Quarantine, "quarantine", false, "keep a sample of rejected signals, with their reason, in the sink's quarantine table (GET /v1/quarantine)")
	fs.IntVar(&c.QuarantineSample, "quarantine-sample", 1, "keep one rejected signal in this many")
	fs.Float64Var(&c.QuarantineRate, "quarantine-rate", 10, "keep at most this many rejected signals a second")
	fs.IntVar(&c.QuarantineDays, "quarantine-days", 7, "days a quarantined signal is kept")
	fs.BoolVar(&c.Relay, "relay", true, "run the embedded outbox relay: business.db in --data-dir, projected into its events table (use `rung relay` for PostgreSQL and NATS)")
	fs.BoolVar(&c.DryRun, "dry-run", false, "print the resolved configuration and exit")
}

func (c *serveConfig) validate() error {
	errs := append(c.pipeConfig.validate(), c.streamConfig.validate(false)...)
	errs = append(errs, c.publishConfig.validate(c.NATS)...)
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", c.Listen, err))
	}
	if c.BufferBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("--buffer-bytes %d: must be at least 1 MiB", c.BufferBytes))
	}
	if _, err := buffer.ParsePolicy(c.WhenFull); err != nil {
		errs = append(errs, fmt.Errorf("--when-full: %w", err))
	}
	if c.FullWait < 0 || c.FullWait > time.Minute {
		errs = append(errs, fmt.Errorf("--full-wait %v: want 0 to 1m", c.FullWait))
	}
	if c.Durability != "memory" && c.Durability != "disk" {
		errs = append(errs, fmt.Errorf("--durability %q: want memory or disk", c.Durability))
	} else if c.Durability == "disk" && c.NATS != "" {
		// With --nats a 202 already waits for JetStream; the log would never be written.
		errs = append(errs, errors.New("--durability disk: one node only; with --nats a 202 already means JetStream holds the signal"))
	}
	if c.WALBytes < 64<<20 {
		errs = append(errs, fmt.Errorf("--wal-bytes %d: must be at least 64 MiB", c.WALBytes))
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, fmt.Errorf("--max-body-bytes %d: must be at least 1024", c.MaxBodyBytes))
	} else if int64(c.MaxBodyBytes) > c.BufferBytes && c.NATS == "" {
		// A body is admitted only while the buffer has its length in room.
		errs = append(errs, fmt.Errorf("--max-body-bytes %d: must not be more than --buffer-bytes %d, which could never take a body that large",
			c.MaxBodyBytes, c.BufferBytes))
	}
	if c.MaxBatch < 1 {
		errs = append(errs, fmt.Errorf("--max-batch %d: must be at least 1", c.MaxBatch))
	}
	if c.DrainTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--drain-timeout %v: must be positive", c.DrainTimeout))
	}
	if c.AdminListen != "" {
		if _, _, err := net.SplitHostPort(c.AdminListen); err != nil {
			errs = append(errs, fmt.Errorf("--admin-listen %q: %w", c.AdminListen, err))
		} else if c.AdminListen == c.Listen {
			errs = append(errs, fmt.Errorf("--admin-listen %q: must differ from --listen", c.AdminListen))
		}
	}
	if err := c.checkPrivate(); err != nil {
		errs = append(errs, err)
	}
	if c.RateIPDelay < 0 || c.RateIPDelay > 10*time.Second {
		errs = append(errs, fmt.Errorf("--rate-ip-delay %v: must be between 0 and 10s", c.RateIPDelay))
	}
	if c.RateIP < 0 || c.RateIPBurst < 0 || c.RateSite < 0 {
		errs = append(errs, errors.New("--rate-ip, --rate-ip-burst and --rate-site must not be negative"))
	}
	if _, err := collector.ParseSites(c.Sites); err != nil {
		errs = append(errs, fmt.Errorf("--sites: %w", err))
	}
	if c.Bots != "flag" && c.Bots != "drop" {
		errs = append(errs, fmt.Errorf("--bots %q: want flag or drop", c.Bots))
	}
	if c.QuarantineSample < 1 || c.QuarantineRate <= 0 || c.QuarantineDays < 1 {
		errs = append(errs, errors.New("--quarantine-sample and --quarantine-days must be at least 1, --quarantine-rate positive"))
	}
	if c.ReadTimeout <= 0 || c.IdleTimeout <= 0 {
		errs = append(errs, errors.New("--read-timeout and --idle-timeout must be positive"))
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("--max-conns %d: must be at least 1", c.MaxConns))
	}
	if c.MaxConnsPerIP < 0 {
		errs = append(errs, fmt.Errorf("--max-conns-per-ip %d: must be 0 (no cap) or more", c.MaxConnsPerIP))
	}
	if c.MaxHeaderBytes < 1024 {
		errs = append(errs, fmt.Errorf("--max-header-bytes %d: must be at least 1024", c.MaxHeaderBytes))
	}
	return errors.Join(errs...)
}

func (c *serveConfig) origins() []string {
	var out []string
	for _, o := range strings.Split(c.AllowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// config is a subcommand's configuration: it registers its flags and validates them.
type config interface {
	flags(fs *flag.FlagSet)
	validate() error
}

// configure fills c from args and env and validates it; with --dry-run (dryRun) it prints
// c instead and says the command is done. An invalid configuration is a usage error
// that lists every problem, one a line.
func configure(name string, c config, dryRun *bool, args []string, env environ, stdout io.Writer) (done bool, err error) {
	fs := newFlags(strings.TrimPrefix(name, "rung "))
	c.flags(fs)
	if err := parseFlags(fs, args, env); err != nil {
		return false, err
	}
	if err := c.validate(); err != nil {
		return false, badUsage(fs, err)
	}
	if *dryRun {
		return true, printResolved(stdout, c)
	}
	return false, nil
}

// printConfig prints v as indented JSON: the --json output of the stats commands.
func printConfig(w io.Writer, c any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(c)
}

// pipeConfig is what `rung serve` and `rung aggregate` share: where the signals are
// stored and how they are rolled up on the way.
type pipeConfig struct {
	Sink              string        `json:"sink"`
	ClickHouse        string        `json:"clickhouse"`
	ClickHouseCluster string        `json:"clickhouse_cluster"`
	DataDir           string        `json:"data_dir"`
	BatchSize         int           `json:"batch_size"`
	FlushInterval     time.Duration `json:"flush_interval"`
	SessionTimeout    time.Duration `json:"session_timeout"`
	Goals             string        `json:"goals"`
	MaxOpenSessions   int           `json:"max_open_sessions"`
	LogLevel          string        `json:"log_level"`
	// afterSignals is the failpoint a test sets through the environment (failpoint).
	afterSignals func()
}

func (c *pipeConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Sink, "sink", "", "discard: keep nothing, count it (a benchmarking and testing aid: everything accepted is lost); empty: ClickHouse with --clickhouse, else SQLite")
	fs.StringVar(&c.ClickHouse, "clickhouse", "", "ClickHouse DSN, e.g. clickhouse://127.0.0.1:9000/rung; empty: the embedded SQLite sink")
	fs.StringVar(&c.ClickHouseCluster, "clickhouse-cluster", "", "a cluster of the ClickHouse servers' <remote_servers>: tables are sharded over it (local tables behind Distributed ones); empty: one server")
	fs.StringVar(&c.DataDir, "data-dir", "./rung-data", "directory of the embedded stores")
	fs.IntVar(&c.BatchSize, "batch-size", 20000, "signals held that make a flush due, else --flush-interval does (serve: each of the 4 flushers)")
	fs.DurationVar(&c.FlushInterval, "flush-interval", time.Second, "longest a signal waits before it is flushed")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", 30*time.Minute, "inactivity that ends a session")
	fs.StringVar(&c.Goals, "goals", "form_submitted", "comma-separated event names that count as conversions")
	fs.IntVar(&c.MaxOpenSessions, "max-open-sessions", 1000000, "open sessions held in memory; beyond, the least recently active is evicted (counted)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
}

func (c *pipeConfig) validate() []error {
	var errs []error
	if c.Sink != "" && c.Sink != "discard" {
		errs = append(errs, fmt.Errorf("--sink %q: want discard, or empty for ClickHouse (--clickhouse) or SQLite", c.Sink))
	}
	if c.ClickHouse != "" && !strings.HasPrefix(c.ClickHouse, "clickhouse://") {
		errs = append(errs, fmt.Errorf("--clickhouse %q: want clickhouse://host:port/database (the native protocol)", c.ClickHouse))
	}
	if c.ClickHouseCluster != "" && c.ClickHouse == "" {
		errs = append(errs, errors.New("--clickhouse-cluster needs --clickhouse: the node to read the cluster from"))
	}
	if c.ClickHouse == "" && c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is empty and no --clickhouse is given: nowhere to store signals"))
	}
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("--batch-size %d: must be at least 1", c.BatchSize))
	}
	if c.FlushInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("--flush-interval %v: must be at least 1ms", c.FlushInterval))
	}
	if c.SessionTimeout < time.Minute {
		errs = append(errs, fmt.Errorf("--session-timeout %v: must be at least 1m", c.SessionTimeout))
	}
	if len(preagg.ParseGoals(c.Goals)) == 0 {
		errs = append(errs, fmt.Errorf("--goals %q: name at least one conversion event", c.Goals))
	}
	if c.MaxOpenSessions < 64 {
		errs = append(errs, fmt.Errorf("--max-open-sessions %d: must be at least 64, one per sessionizer shard", c.MaxOpenSessions))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	return errs
}

// streamConfig names the JetStream stream of a cluster: `rung serve --nats` publishes to
// it, `rung aggregate` consumes it.
type streamConfig struct {
	NATS        string `json:"nats"`
	Stream      string `json:"stream"`
	Subject     string `json:"stream_subject"`
	Partitions  int    `json:"stream_partitions"`
	Replicas    int    `json:"stream_replicas"`
	StreamBytes int64  `json:"stream_max_bytes"`
}

// flags registers the stream's flags; required marks --nats as one the command cannot
// do without.
func (c *streamConfig) flags(fs *flag.FlagSet, required bool) {
	what := "NATS server URLs, comma-separated: run as a cluster collector that publishes every signal to JetStream before answering 202; empty: one node"
	if required {
		what = "NATS server URLs, comma-separated"
	}
	fs.StringVar(&c.NATS, "nats", "", what)
	fs.StringVar(&c.Stream, "stream", "RUNG_SIGNALS", "the JetStream stream of signals")
	fs.StringVar(&c.Subject, "stream-subject", "rung.signals", "subject prefix of the stream: partition p is <prefix>.<p>; two streams on one NATS need different prefixes")
	fs.IntVar(&c.Partitions, "stream-partitions", 64, "partitions of the stream (subjects rung.signals.<p>); fixed when the stream is created")
	fs.IntVar(&c.Replicas, "stream-replicas", 1, "replicas of the stream when rung creates it (3 on a three-node NATS cluster)")
	fs.Int64Var(&c.StreamBytes, "stream-max-bytes", 1<<30, "bytes the stream may hold when rung creates it; beyond, publishes are refused (503)")
}

func (c *streamConfig) validate(required bool) []error {
	var errs []error
	if required && c.NATS == "" {
		errs = append(errs, errors.New("--nats is required: the NATS servers that hold the stream"))
	}
	if c.NATS == "" {
		return errs
	}
	for _, u := range strings.Split(c.NATS, ",") {
		if !strings.HasPrefix(strings.TrimSpace(u), "nats://") {
			errs = append(errs, fmt.Errorf("--nats %q: want nats://host:port[,nats://host:port...]", c.NATS))
			break
		}
	}
	if c.Stream == "" || strings.ContainsAny(c.Stream, ". *>") {
		errs = append(errs, fmt.Errorf("--stream %q: want a name without spaces, dots or wildcards", c.Stream))
	}
	if c.Subject == "" || strings.ContainsAny(c.Subject, " *>") || strings.HasPrefix(c.Subject, ".") || strings.HasSuffix(c.Subject, ".") {
		errs = append(errs, fmt.Errorf("--stream-subject %q: want dot-separated tokens without spaces or wildcards", c.Subject))
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		errs = append(errs, fmt.Errorf("--stream-partitions %d: want 1 to 1024", c.Partitions))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("--stream-replicas %d: want 1 to 5", c.Replicas))
	}
	if c.StreamBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("--stream-max-bytes %d: must be at least 1 MiB", c.StreamBytes))
	}
	return errs
}

// publishConfig is how a cluster collector (`rung serve --nats`) publishes to the
// stream; `rung aggregate` only consumes, so it has none of these.
type publishConfig struct {
	PublishTimeout time.Duration `json:"publish_timeout"`
	Linger         time.Duration `json:"publish_linger"`
	MessageBytes   int           `json:"publish_max_bytes"`
}

func (c *publishConfig) flags(fs *flag.FlagSet) {
	fs.DurationVar(&c.PublishTimeout, "publish-timeout", 5*time.Second, "with --nats: longest /collect waits for JetStream to acknowledge a request's signals")
	fs.DurationVar(&c.Linger, "publish-linger", 5*time.Millisecond, "with --nats: longest a partition's message waits for more signals behind one in flight (group commit: more signals per message, more latency)")
	fs.IntVar(&c.MessageBytes, "publish-max-bytes", 64<<10, "with --nats: a partition's message is sent once it holds this many bytes")
}

// validate checks the publishing settings; they matter only with nats set.
func (c *publishConfig) validate(nats string) []error {
	if nats == "" {
		return nil
	}
	var errs []error
	if c.PublishTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--publish-timeout %v: must be positive", c.PublishTimeout))
	}
	if c.Linger <= 0 || c.Linger > time.Second {
		errs = append(errs, fmt.Errorf("--publish-linger %v: want more than 0, at most 1s", c.Linger))
	}
	if c.MessageBytes < 1<<10 || c.MessageBytes > 512<<10 {
		// NATS refuses payloads over its max_payload, 1 MiB by default, and one request's
		// signals for a partition may go past this bound.
		errs = append(errs, fmt.Errorf("--publish-max-bytes %d: want 1 KiB to 512 KiB", c.MessageBytes))
	}
	return errs
}
