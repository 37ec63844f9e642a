// Package collector owns rung's HTTP surface: the /collect endpoint (content types, body
// limits, CORS, decoding, validation, enrichment, the 202), health and readiness,
// /metrics, the schemas, the OpenAPI document, who may reach the private surfaces (the
// API token, the sign-in page and its cookie), and the mounting of the slower surfaces
// other packages serve as standard-library handlers (placement, stats, attribution,
// pages). fasthttp stays in here: what the collector hands on refers to fasthttp's reused
// memory only for the call it is handed in (the intake and the quarantine copy what they
// keep).
//
// /collect does no I/O inline: a signal is decoded, validated, copied into the buffer and
// answered. The buffer and the sink are the collector's dependencies, not its business.
package collector

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/rungdev/rung/schemas"
)

// Intake takes a request's accepted signals: the buffer on one node, a JetStream stream
// in a cluster. Append stores each signal or says in errs[i] why not (buffer.ErrFull,
// buffer.ErrDropped, buffer.ErrClosed). The signals' strings point into the request
// body, which the HTTP server reuses once the handler returns: Append must copy what it
// keeps. The buffer answers at once, or within its FullWait when full; a stream returns
// once JetStream holds them, which
// is why it is handed the request's signals together, so their acknowledgements are
// awaited as one.
type Intake interface {
	Append(ctx context.Context, signals []*schemas.Signal, errs []error)
}

// Config is the collector's part of rung's configuration.
type Config struct {
	MaxBodyBytes   int           // largest /collect body; default 1 MiB
	MaxBatch       int           // most signals in one body; default 500
	AllowedOrigins []string      // CORS origins; "*" or empty allows any
	RetryAfter     time.Duration // told to clients when the buffer is full; default 1s
	APIToken       string        // when set, private surfaces need it (Bearer, or the sign-in cookie)
	SecureCookie   bool          // always mark the sign-in cookie Secure, not only for requests seen to come over HTTPS
	ReadTimeout    time.Duration // default 10s: cuts off slow clients
	WriteTimeout   time.Duration // default 10s
	IdleTimeout    time.Duration // default 60s
	MaxConns       int           // concurrent connections; default 10000
	MaxConnsPerIP  int           // concurrent connections from one client address; 0: no cap
	MaxHeaderBytes int           // default 8 KiB
	// Admits, when set, says whether a body of n bytes may be decoded now, or within the
	// buffer's FullWait; a body it refuses is answered 503 + Retry-After before it is
	// read further (buffer.Admits).
	Admits func(n int) bool

	// Abuse controls; the zero values turn them off.
	RateIP        float64 // requests/s per client address (burst: RateIPBurst), 429 over it
	RateIPBurst   float64
	RateIPDelay   time.Duration // how long a 429 for RateIP is held before it is sent
	RateSite      float64       // signals/s per site (burst: 10 s worth), 429 over it
	Sites         Sites         // the sites collected for; empty: any
	DropBots      bool          // refuse signals from bots instead of storing them flagged
	AdminSeparate bool          // private surfaces only on the admin listener (ServeAdmin)

	// Quarantine, when set, is handed a sample of the rejected signals (one in
	// QuarantineSample, at most QuarantineRate a second). It must not block, and must
	// copy the strings it keeps: they point into the request body.
	Quarantine       func(schemas.Quarantined)
	QuarantineSample int
	QuarantineRate   float64
}

func (c *Config) defaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 500
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 10000
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 8 << 10
	}
}

// Mount is a slower surface served by a standard-library handler.
type Mount struct {
	Prefix  string // a path ("/place") or a prefix ending in "/" ("/v1/stats/")
	Exact   bool   // Prefix is one path even though it ends in "/" (the dashboard's "/")
	Handler http.Handler
	Private bool // behind the API token
}

// Server is the collector. Create it with New; serve it with Serve.
type Server struct {
	cfg     Config
	reg     *schemas.Registry
	intake  Intake
	ready   func(context.Context) error
	set     *metrics.Set
	log     *slog.Logger
	mounts  []mount
	auth    *auth
	writers []func(w io.Writer)

	anyOrigin bool
	origins   map[string]bool
	retry     string
	rateIP    *limiter
	salt      *salts // keys rateIP's buckets
	rateSite  *limiter
	qRate     *limiter
	qSeen     atomic.Uint64
	bots      botCache
	seq       schemas.Sequence // the accepted signals' arrival order (schemas.Signal.Seq)

	pool sync.Pool // *work

	received *metrics.Counter
	accepted *metrics.Counter
	rejected map[string]*metrics.Counter // per-signal reasons
	requests map[int]*metrics.Counter    // by status
	bodyErrs map[string]*metrics.Counter // whole-body rejections, by reason
}

type mount struct {
	Mount
	h fasthttp.RequestHandler
}

// work is the per-request scratch space, reused through a pool.
type work struct {
	batch   schemas.Batch
	out     []byte
	pending []*schemas.Signal // the signals handed to the intake
	at      []int             // their indexes in batch.Signals
	errs    []error           // the intake's answers
}

// New makes the collector. ready reports whether the store behind the intake can take
// writes now (for /readyz); set receives the collector's metrics and is served at
// /metrics.
func New(cfg Config, reg *schemas.Registry, intake Intake, ready func(context.Context) error, set *metrics.Set, log *slog.Logger, mounts ...Mount) *Server {
	cfg.defaults()
	s := &Server{
		cfg: cfg, reg: reg, intake: intake, ready: ready, set: set, log: log,
		origins:  make(map[string]bool),
		retry:    strconv.Itoa(int((cfg.RetryAfter + time.Second - 1) / time.Second)),
		received: set.NewCounter(`rung_signals_received_total`),
		accepted: set.NewCounter(`rung_signals_accepted_total`),
		rejected: make(map[string]*metrics.Counter),
		requests: make(map[int]*metrics.Counter),
		bodyErrs: make(map[string]*metrics.Counter),
		auth:     newAuth(cfg.APIToken, cfg.SecureCookie, time.Now),
	}
	s.pool.New = func() any { return new(work) }
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			s.anyOrigin = true
		}
		s.origins[strings.TrimSuffix(o, "/")] = true
	}
	s.anyOrigin = s.anyOrigin || len(cfg.AllowedOrigins) == 0
	seed := uint64(time.Now().UnixNano()) // bucket placement differs per process: not guessable
	s.rateIP = newLimiter(cfg.RateIP, cfg.RateIPBurst, 1<<16, seed)
	s.salt = newSalts(func(b []byte) { rand.Read(b) })
	s.rateSite = newLimiter(cfg.RateSite, 10*cfg.RateSite, 1<<12, seed)
	if cfg.Quarantine != nil {
		s.cfg.QuarantineSample = max(1, cfg.QuarantineSample)
		s.qRate = newLimiter(max(cfg.QuarantineRate, 0.1), max(cfg.QuarantineRate, 1), 1, seed)
	}
	for _, r := range []string{schemas.CodeSchema, schemas.CodeDuplicateKey, schemas.CodeInvalidUTF8,
		schemas.CodeNumberRange, schemas.CodeNotObject, reasonShutdown, reasonUnknownSite, reasonOrigin,
		reasonBot, reasonRateSite} {
		s.rejected[r] = set.NewCounter(`rung_signals_rejected_total{reason="` + r + `"}`)
	}
	for _, r := range []string{"malformed_json", "too_deep", "not_signals", "empty", "batch_too_large",
		"body_too_large", "content_type", "content_encoding", "method", "origin", "unauthorized", "rate_ip",
		"headers_too_large", "timeout", "bad_request", "max_conns", "max_conns_per_ip", "buffer_full"} {
		s.bodyErrs[r] = set.NewCounter(`rung_requests_rejected_total{reason="` + r + `"}`)
	}
	for _, code := range []int{200, 202, 204, 400, 401, 403, 404, 405, 408, 413, 415, 429, 431, 500, 503} {
		s.requests[code] = set.NewCounter(`rung_collect_responses_total{code="` + strconv.Itoa(code) + `"}`)
	}
	// A counter the registry keeps itself: written at scrape time, typed as a counter.
	set.RegisterMetricsWriter(func(w io.Writer) {
		metrics.WriteCounterUint64(w, `rung_validation_disagreements_total`, reg.Disagreements())
	})
	for _, m := range mounts {
		s.mounts = append(s.mounts, mount{Mount: m, h: fasthttpadaptor.NewFastHTTPHandler(m.Handler)})
	}
	return s
}

// AddMetrics registers a writer of extra Prometheus text lines for /metrics (the relay,
// the sessionizer). Call before Serve.
func (s *Server) AddMetrics(w func(io.Writer)) { s.writers = append(s.writers, w) }

// Serve answers the public surface on ln until ctx is cancelled, then stops accepting
// connections and waits (up to grace) for requests in progress to finish. It returns
// after the last handler has returned, so the caller may close the intake next. A
// listener that fails (or is closed) before ctx ends is an error.
func (s *Server) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	return s.serve(ctx, ln, grace, s.Handler)
}

// ServeAdmin answers the private surfaces (/metrics, the stats, the dashboard) on ln,
// for Config.AdminSeparate; it stops as Serve does.
func (s *Server) ServeAdmin(ctx context.Context, ln net.Listener, grace time.Duration) error {
	return s.serve(ctx, ln, grace, s.admin)
}

func (s *Server) serve(ctx context.Context, ln net.Listener, grace time.Duration, h fasthttp.RequestHandler) error {
	srv := s.fasthttp(h)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.capConns(ln)) }()
	// Salts are zeroed on time even when no request comes to rotate them.
	expire := time.NewTimer(time.Hour)
	defer expire.Stop()
wait:
	for {
		select {
		case err := <-errc:
			// The listener failed under the server (fasthttp returns nil when it was
			// closed): an error all the same, since nothing asked it to stop.
			if err == nil {
				err = errors.New("the listener closed")
			}
			sctx, cancel := context.WithTimeout(context.Background(), grace)
			defer cancel()
			srv.ShutdownWithContext(sctx) // finish the connections already accepted
			return fmt.Errorf("serve %s: %w", ln.Addr(), err)
		case <-ctx.Done():
			break wait
		case now := <-expire.C:
			if d := s.salt.expire(now); d > 0 && d < time.Hour {
				expire.Reset(d)
			} else {
				expire.Reset(time.Hour)
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.ShutdownWithContext(sctx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	return <-errc
}

func (s *Server) fasthttp(h fasthttp.RequestHandler) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               h,
		Name:                  "rung",
		NoDefaultServerHeader: true,
		ReadTimeout:           s.cfg.ReadTimeout,
		WriteTimeout:          s.cfg.WriteTimeout,
		IdleTimeout:           s.cfg.IdleTimeout,
		ReadBufferSize:        s.cfg.MaxHeaderBytes,
		// Bodies up to twice the limit are read so the handler can answer 413 on a
		// connection that stays usable; beyond that fasthttp refuses and closes.
		MaxRequestBodySize: 2*s.cfg.MaxBodyBytes + 4096,
		CloseOnShutdown:    true,
		Logger:             logger{s.log},
		ErrorHandler:       s.transportError,

		// A multipart body would be parsed before the handler runs, and a malformed one
		// refused as a bad request; the handler answers 415 to any such content type.
		DisablePreParseMultipartForm: true,
		// The connection caps are held by the listener (capConns), which answers in
		// JSON; fasthttp's is a backstop, with room for the connections between their
		// Close, which frees a place under the listener, and the return of their worker.
		Concurrency: s.cfg.MaxConns + s.cfg.MaxConns/8 + 64,
	}
}

// Handler routes every request.
func (s *Server) Handler(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch string(path) { // no allocation: the compiler recognises the conversion
	case "/collect":
		s.collect(ctx)
		return
	case "/healthz":
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString("ok\n")
		return
	case "/readyz":
		s.readyz(ctx)
		return
	case "/openapi.json":
		s.openapi(ctx)
		return
	case "/metrics":
		if !s.cfg.AdminSeparate {
			if s.private(ctx) {
				s.metrics(ctx)
			}
			return
		}
	case "/signin", "/signout":
		if !s.cfg.AdminSeparate {
			s.account(ctx, path)
			return
		}
	}
	if bytes.HasPrefix(path, []byte("/schemas/")) {
		s.schema(ctx, string(path[len("/schemas/"):]))
		return
	}
	if m := s.mount(path); m != nil && (!m.Private || !s.cfg.AdminSeparate) {
		if !m.Private || s.private(ctx) {
			m.h(ctx)
		}
		return
	}
	answerError(ctx, fasthttp.StatusNotFound, "not found")
}

// admin routes the admin listener: health, metrics and the private mounts.
func (s *Server) admin(ctx *fasthttp.RequestCtx) {
	path := ctx.Path()
	switch string(path) {
	case "/healthz", "/readyz", "/openapi.json":
		s.Handler(ctx)
		return
	case "/metrics":
		if s.private(ctx) {
			s.metrics(ctx)
		}
		return
	case "/signin", "/signout":
		s.account(ctx, path)
		return
	}
	if m := s.mount(path); m != nil && m.Private {
		if s.private(ctx) {
			m.h(ctx)
		}
		return
	}
	answerError(ctx, fasthttp.StatusNotFound, "not found on the admin listener")
}

func (s *Server) mount(path []byte) *mount {
	for i := range s.mounts {
		m := &s.mounts[i]
		if string(path) == m.Prefix || (!m.Exact && strings.HasSuffix(m.Prefix, "/") && bytes.HasPrefix(path, []byte(m.Prefix))) {
			return m
		}
	}
	return nil
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	c, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.ready(c); err != nil {
		answerError(ctx, fasthttp.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString("ready\n")
}

func (s *Server) metrics(ctx *fasthttp.RequestCtx) {
	var b bytes.Buffer
	s.set.WritePrometheus(&b)
	for _, w := range s.writers {
		w(&b)
	}
	ctx.SetContentType("text/plain; version=0.0.4; charset=utf-8")
	ctx.SetBody(b.Bytes())
}

func (s *Server) schema(ctx *fasthttp.RequestCtx, name string) {
	if name == "index.json" {
		s.cors(ctx)
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"schemas": s.reg.Names()})
		return
	}
	b, ok := s.reg.File(name)
	if !ok || !strings.HasSuffix(name, ".json") {
		answerError(ctx, fasthttp.StatusNotFound, "no such schema; see /schemas/index.json")
		return
	}
	s.cors(ctx)
	ctx.SetContentType("application/schema+json")
	ctx.Response.Header.Set("Cache-Control", "public, max-age=3600")
	ctx.SetBody(b)
}

// transportError answers what fasthttp refused before the handler ran, in the same
// JSON shape as every other error answer (fasthttp's own are plain text).
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		s.fail(ctx, fasthttp.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("body larger than %d bytes", s.cfg.MaxBodyBytes))
	case errors.As(err, &small):
		s.fail(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "headers_too_large",
			fmt.Sprintf("request head larger than %d bytes", s.cfg.MaxHeaderBytes))
	case isTimeout(err):
		s.fail(ctx, fasthttp.StatusRequestTimeout, "timeout", "request not received within the read timeout")
	default:
		s.fail(ctx, fasthttp.StatusBadRequest, "bad_request", "bad request: "+err.Error())
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// logger takes fasthttp's messages, which name client addresses ("error when serving
// connection %q<->%q", the addresses inside a net.OpError): rung never logs one.
type logger struct{ l *slog.Logger }

func (l logger) Printf(format string, args ...any) {
	l.l.Debug(addrPattern.ReplaceAllString(fmt.Sprintf(format, args...), "[address]"))
}

// addrPattern matches an IPv4 address, or anything with two colons that could be an IPv6
// one, with its port.
var addrPattern = regexp.MustCompile(`\[?[0-9a-fA-F]*:[0-9a-fA-F]*:[0-9a-fA-F:.]*\]?(:\d+)?|\d{1,3}(\.\d{1,3}){3}(:\d+)?`)

// writeJSON answers with v as JSON; for the rare paths, not the hot one.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, _ := json.Marshal(v)
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}
