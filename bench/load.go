package bench

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config is one load run.
type Config struct {
	// Target is rung's base URL (http://127.0.0.1:8080); signals go to Target/collect.
	// Several comma-separated URLs spread the connections over several collectors (a
	// cluster), connection i to target i mod n, as a load balancer would.
	Target string
	// AllowRemote permits a target outside the loopback range. Off, the run refuses it.
	AllowRemote bool
	// Rate is the open-loop target in requests/s; 0 runs closed loop: each connection
	// sends its next request as soon as the last is answered.
	Rate float64
	// Ramp raises the open-loop rate linearly from 0 to Rate over its length. Latency
	// figures cover what comes after it (the series show the ramp too).
	Ramp time.Duration
	// Connections is the number of connections, each with its own stream of visitors.
	Connections int
	// Batch is the signals per request: 1 sends a signal object, more send an array.
	Batch int
	// Duration and Count (requests) end the timed phase, whichever comes first; at
	// least one must be set.
	Duration time.Duration
	Count    int64
	// Timeout bounds one request; default 10s.
	Timeout time.Duration
	// Active is the number of visitors each connection interleaves; 0 picks one: 32, or
	// fewer at low open-loop rates, so one visitor's signals stay under a minute apart.
	Active int
	// Finish bounds the untimed phase after the timed one, in which each connection
	// completes the journeys of the visitors it started, so every visitor's truth is
	// whole. In open loop the phase keeps to Rate; 0 gives it as long as the journeys
	// left need at that rate (at least 30s, at most MaxAutoFinish). In closed loop it
	// goes as fast as answers come; 0 is 30s.
	Finish time.Duration
	// Model is the workload.
	Model Model
	// Progress receives a live line a second; nil: none. ProgressCR rewrites one line
	// (for a terminal) instead of printing one per second.
	Progress   io.Writer
	ProgressCR bool
	// Watch names processes (rung, ClickHouse) whose CPU and memory are sampled every
	// second, besides the load generator's own.
	Watch []Watched
}

// Watched is a process to sample: a name for the report and its pid.
type Watched struct {
	Name string
	PID  int
}

func (c *Config) defaults() {
	if c.Connections == 0 {
		c.Connections = 64
	}
	if c.Batch == 0 {
		c.Batch = 1
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Finish == 0 && c.Rate == 0 {
		c.Finish = 30 * time.Second
	}
	if c.Active == 0 {
		c.Active = 32
		if c.Rate > 0 {
			// A connection sends Rate/Connections requests a second; with Active
			// visitors interleaved, one visitor's signals are Active/that seconds apart.
			// Keep it under a minute so no visitor's signals drift towards the server's
			// 30-minute session timeout.
			perConn := c.Rate * float64(c.Batch) / float64(c.Connections)
			c.Active = int(min(32, max(1, perConn*60)))
		}
	}
}

// Validate reports every setting that cannot work, after defaults.
func (c *Config) Validate() error {
	c.defaults()
	var errs []error
	if _, err := Targets(c.Target); err != nil {
		errs = append(errs, err)
	}
	if c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate %v: want requests/s, or 0 for closed loop", c.Rate))
	}
	if c.Ramp < 0 || (c.Ramp > 0 && c.Rate == 0) {
		errs = append(errs, fmt.Errorf("ramp %v: only an open-loop run (a rate) ramps", c.Ramp))
	}
	if c.Connections < 1 || c.Connections > 10000 {
		errs = append(errs, fmt.Errorf("connections %d: want 1 to 10000", c.Connections))
	}
	if c.Batch < 1 || c.Batch > 10000 {
		errs = append(errs, fmt.Errorf("batch %d: want 1 to 10000 signals per request", c.Batch))
	}
	if c.Duration < 0 || c.Count < 0 || (c.Duration == 0 && c.Count == 0) {
		errs = append(errs, errors.New("give a duration or a request count (or both): the run must end by itself"))
	}
	if c.Timeout < 0 || c.Finish < 0 || c.Active < 1 {
		errs = append(errs, errors.New("timeout, finish and active must be positive"))
	}
	if err := c.Model.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// Targets parses a comma-separated list of base URLs.
func Targets(list string) ([]*url.URL, error) {
	var out []*url.URL
	for _, s := range strings.Split(list, ",") {
		u, err := targetURL(strings.TrimSpace(s))
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

func targetURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("target %q: want http://host:port (rung's base URL; https is not supported)", s)
	}
	return u, nil
}

// CheckTarget refuses targets that resolve to anything outside loopback, unless
// allowRemote: a load generator pointed at the wrong address is an attack.
func CheckTarget(ctx context.Context, target string, allowRemote bool) error {
	us, err := Targets(target)
	if err != nil {
		return err
	}
	if allowRemote {
		return nil
	}
	for _, u := range us {
		if err := checkLoopback(ctx, u); err != nil {
			return err
		}
	}
	return nil
}

func checkLoopback(ctx context.Context, u *url.URL) error {
	host := u.Hostname()
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Errorf("resolve target %q: %w", host, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	if len(ips) == 0 {
		return fmt.Errorf("resolve target %q: no address", host)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s is %s; pass --allow-remote to load a server you own elsewhere", ErrNotLoopback, host, ip)
		}
	}
	return nil
}

// intended is when, from the start, global request k is due in an open-loop run.
func (c *Config) intended(k int64) time.Duration {
	kf, r, ramp := float64(k), c.Rate, c.Ramp.Seconds()
	var s float64
	if inRamp := r * ramp / 2; kf < inRamp {
		s = math.Sqrt(2 * ramp * kf / r) // the integral of the linear ramp, inverted
	} else {
		s = ramp + (kf-inRamp)/r
	}
	return time.Duration(s * float64(time.Second))
}

// due is how many requests an open-loop run had scheduled by t after the start.
func (c *Config) due(t time.Duration) int64 {
	s, r, ramp := t.Seconds(), c.Rate, c.Ramp.Seconds()
	if s < ramp {
		return int64(math.Ceil(r * s * s / (2 * ramp)))
	}
	return int64(math.Ceil(r*ramp/2 + (s-ramp)*r))
}

// targetRate is the open-loop rate at t after the start.
func (c *Config) targetRate(t time.Duration) float64 {
	if c.Rate == 0 {
		return 0
	}
	if t < c.Ramp {
		return c.Rate * t.Seconds() / c.Ramp.Seconds()
	}
	return c.Rate
}

// visit is what the run knows of one visitor: which of their signals were accepted
// (or met a transport error, so their fate is unknown), and the truth their accepted
// signals make, in the server's terms (see Truth).
type visit struct {
	accepted, unknown uint64 // bit i: signal Seq i
	landing           int8   // page of the first accepted pageview; -1: none
	variant           int8   // variant of the first accepted exposure; -1: none
	flags             uint8
}

const (
	fAny       = 1 << iota // a signal accepted: the server has a session for them
	fConverted             // a goal event accepted
	fConvExp               // a goal event accepted after an accepted exposure
	fUncertain             // some signal's fate is unknown
)

// active is a visitor whose journey a connection is sending.
type active struct {
	j       int // index in the lane's visits
	anon    []byte
	sigs    []Signal
	next    int
	nextAt  int64         // simulated time of sigs[next], cached for the heap
	arrival int64         // the lane's simulated clock when they arrived
	hold    time.Duration // their next pageview waits until the run clock passes this
	pvInReq bool          // a pageview of theirs is in the request being built
	done    bool
	hi      int // heap index
}

func (a *active) at() int64 { return a.nextAt }

type actives []*active

func (h actives) Len() int           { return len(h) }
func (h actives) Less(i, j int) bool { return h[i].at() < h[j].at() }
func (h actives) Swap(i, j int)      { h[i], h[j] = h[j], h[i]; h[i].hi = i; h[j].hi = j }
func (h *actives) Push(x any)        { a := x.(*active); a.hi = len(*h); *h = append(*h, a) }
func (h *actives) Pop() any {
	old := *h
	a := old[len(old)-1]
	*h = old[:len(old)-1]
	return a
}

type ref struct {
	a   *active
	seq int
}

// lane is one connection's worth of the run: its visitors, its requests, its counts.
// Only its own goroutine touches it, except mu-guarded cur and the atomic counters,
// which the ticker reads.
type lane struct {
	id     int
	run    *runner
	visits []visit
	heap   actives
	held   []*active
	free   []*active
	clock  int64
	src    *rand.PCG
	rng    *rand.Rand

	http    *conn // one connection, the lane's own
	conn    atomic.Pointer[net.Conn]
	body    []byte
	pending []ref
	drop    []bool

	mu  sync.Mutex
	cur *Histogram // this second's corrected latencies

	// steady holds the latencies after the ramp; steadySvc the service times, which in
	// closed loop are the same figures (a request is due when it is sent), so there
	// steady stands for both.
	steady, steadySvc *Histogram

	completed, accepted, failed, non202 atomic.Int64
	// inflight is 1 + the run-clock time the request in flight was sent, 0 when none;
	// the ticker closes the connection of one in flight longer than the timeout and
	// sets cut, so the lane books it as a timeout.
	inflight atomic.Int64
	cut      atomic.Bool

	sent, signals, rejected, unknown, notSent, inconsistent int64
	status                                                  [1000]int64 // by HTTP status
	errs, reasons                                           map[string]int64
	finReq, finSignals                                      int64
	// finCompleted and finAccepted are the finish phase's share of completed and
	// accepted, for the ticker.
	finCompleted, finAccepted atomic.Int64

	modelVisitors, modelSessions int64
	modelVariant                 [][2]int64 // visitors, converters by variant as the model drew them
}

type runner struct {
	cfg     *Config
	start   time.Time
	claimed atomic.Int64
	lanes   []*lane

	// stop ends the run early; refused holds the first 401 or 403 /collect answered,
	// which stops it: every request after would be refused the same way.
	stop    context.CancelFunc
	refused atomic.Int64
}

// clock is the run clock: the monotonic time since the start.
func (r *runner) clock() time.Duration { return time.Since(r.start) }

// watchdog cuts off requests in flight for longer than the timeout. Requests carry no
// deadline of their own: setting one costs two timer updates per request, a tenth of
// the generator's own work.
func (r *runner) watchdog() {
	now := r.clock()
	for _, l := range r.lanes {
		if t := l.inflight.Load(); t != 0 && now-time.Duration(t-1) > r.cfg.Timeout {
			if c := l.conn.Load(); c != nil {
				l.cut.Store(true)
				(*c).Close()
			}
		}
	}
}

func (l *lane) start() {
	m := &l.run.cfg.Model
	L := int64(len(l.run.lanes))
	v := int64(l.id) + int64(len(l.visits))*L
	var a *active
	if n := len(l.free); n > 0 {
		a, l.free = l.free[n-1], l.free[:n-1]
	} else {
		a = &active{}
	}
	jr := m.journey(v, a.sigs[:0], l.src, l.rng)
	*a = active{j: len(l.visits), sigs: jr.Signals, arrival: l.clock, nextAt: l.clock, anon: m.appendAnonymousID(a.anon[:0], v)}
	l.visits = append(l.visits, visit{landing: -1, variant: -1})
	l.modelVisitors++
	l.modelSessions += int64(jr.Sessions)
	if jr.Variant >= 0 {
		l.modelVariant[jr.Variant][0]++
		if jr.Converts {
			l.modelVariant[jr.Variant][1]++
		}
	}
	heap.Push(&l.heap, a)
}

// build fills the request body with the next signals of the lane's visitors, in
// simulated-time order, and returns how many. finishing: start no new visitor.
//
// A visitor's landing page is the path of their first pageview, and rung breaks a tie
// between pageviews stamped in the same millisecond by path, not by order. So until a
// visitor's first pageview has been answered, their next pageview waits: it goes in no
// request with it, and in no request sent until a millisecond and a bit after its
// answer (rung stamped it before answering, so the next one gets a later millisecond).
func (l *lane) build(now time.Duration, finishing bool) int {
	m := &l.run.cfg.Model
	batch, k := l.run.cfg.Batch, l.run.cfg.Active
	l.body, l.pending, l.held = l.body[:0], l.pending[:0], l.held[:0]
	if batch > 1 {
		l.body = append(l.body, '[')
	}
	for len(l.pending) < batch {
		for !finishing && len(l.heap)+len(l.held) < k {
			l.start()
		}
		if len(l.heap) == 0 {
			if finishing || len(l.held) >= 4*k {
				break
			}
			l.start()
			continue
		}
		a := l.heap[0]
		g := &a.sigs[a.next]
		if g.Type == "pageview" && ((a.pvInReq && l.visits[a.j].landing < 0) || now < a.hold) {
			heap.Pop(&l.heap)
			l.held = append(l.held, a)
			continue
		}
		if len(l.pending) > 0 && batch > 1 {
			l.body = append(l.body, ',')
		}
		l.body = m.appendJSON(l.body, g, a.anon)
		l.pending = append(l.pending, ref{a, a.next})
		l.clock = max(l.clock, a.at())
		if g.Type == "pageview" && l.visits[a.j].landing < 0 {
			a.pvInReq = true
		}
		if a.next++; a.next == len(a.sigs) {
			heap.Pop(&l.heap)
			a.done = true
		} else {
			a.nextAt = a.arrival + a.sigs[a.next].AtMs
			heap.Fix(&l.heap, 0)
		}
	}
	for _, a := range l.held {
		heap.Push(&l.heap, a)
	}
	if batch > 1 {
		l.body = append(l.body, ']')
	}
	return len(l.pending)
}

// send builds and sends one request due at due (negative: when sent), and settles what
// it carried; timed requests count towards the latency figures. now is the run clock
// read just before (in closed loop, when the last answer came), negative if unknown.
// It returns when the answer came, and false when there was nothing left to send.
//
// Times are on the run clock (since the start, monotonic): one clock read per time,
// and in closed loop one per request. Building the body takes well under a
// microsecond: the latency counts it in.
func (l *lane) send(due, now time.Duration, timed, finishing bool) (time.Duration, bool) {
	sent := now
	for {
		if sent < 0 {
			sent = l.run.clock()
		}
		if l.build(sent, finishing) > 0 {
			break
		}
		if len(l.heap) == 0 {
			return sent, false
		}
		// Every visitor waits for a millisecond to pass (see build): let it.
		time.Sleep(holdFor / 4)
		sent = -1
	}
	l.inflight.Store(int64(sent) + 1)
	err := l.http.do(l.body, sent)
	l.inflight.Store(0)
	done := l.run.clock()
	l.http.idleSince = done
	if err != nil && l.cut.Swap(false) {
		err = errTimeout
	}
	l.complete(err, due, sent, done, timed)
	return done, true
}

// complete settles the request sent at sent and due at due (negative: when sent),
// answered (or failed with err) at done, and books its latency if timed.
func (l *lane) complete(err error, due, sent, done time.Duration, timed bool) {
	acc := l.settle(err, done)
	if due < 0 {
		due = sent
	}
	if timed {
		lat, svc := done-due, done-sent
		l.mu.Lock()
		l.cur.Record(lat)
		l.mu.Unlock()
		if due >= l.run.cfg.Ramp {
			l.steady.Record(lat)
			if l.run.cfg.Rate > 0 {
				l.steadySvc.Record(svc)
			}
		}
	} else {
		l.finReq++
		l.finSignals += int64(len(l.pending))
		l.finAccepted.Add(acc)
		l.finCompleted.Add(1)
	}
}

// holdFor is how long a visitor's next pageview waits after the answer to their first.
const holdFor = 1100 * time.Microsecond

// errTimeout: the watchdog cut a request off after Config.Timeout.
var errTimeout = errors.New("no answer within the timeout")

var allAccepted = []byte(`"rejected":0`)

// collectAnswer is the body of a /collect answer.
type collectAnswer struct {
	Accepted *int   `json:"accepted"`
	Error    string `json:"error"`
	Errors   []struct {
		Index  int    `json:"index"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

// settle books the answer to the request in pending and returns how many signals it
// accepted.
func (l *lane) settle(err error, done time.Duration) int64 {
	n := len(l.pending)
	l.sent++
	l.signals += int64(n)
	l.completed.Add(1)
	defer func() {
		for _, r := range l.pending {
			a := r.a
			if a.pvInReq {
				a.hold, a.pvInReq = done+holdFor, false
			}
			if a.done {
				a.done = false
				l.free = append(l.free, a)
			}
		}
	}()
	if err != nil {
		l.failed.Add(1)
		kind, sentForSure := classify(err)
		l.errs[kind]++
		for _, r := range l.pending {
			if sentForSure {
				vi := &l.visits[r.a.j]
				vi.unknown |= 1 << r.seq
				vi.flags |= fUncertain
				l.unknown++
			} else {
				l.notSent++
			}
		}
		return 0
	}
	code, body := l.http.ans.status, l.http.ans.body
	l.status[code]++
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		if l.run.refused.CompareAndSwap(0, int64(code)) {
			l.run.stop()
		}
	}
	if code != http.StatusAccepted {
		l.non202.Add(1)
	}
	l.drop = l.drop[:0]
	for range n {
		l.drop = append(l.drop, code != http.StatusAccepted)
	}
	if code != http.StatusAccepted || !bytes.Contains(body, allAccepted) {
		var a collectAnswer
		if json.Unmarshal(body, &a) != nil {
			l.reasons[fmt.Sprintf("HTTP %d, unreadable answer", code)] += int64(n)
		}
		for _, e := range a.Errors {
			if e.Index >= 0 && e.Index < n {
				l.drop[e.Index] = true
			}
			l.reasons[e.Reason]++
		}
		if len(a.Errors) == 0 && code != http.StatusAccepted {
			why := a.Error
			if why == "" {
				why = "no reason given"
			}
			l.reasons[fmt.Sprintf("HTTP %d: %s", code, why)] += int64(n)
		}
		if code == http.StatusAccepted && a.Accepted != nil && *a.Accepted != n-len(a.Errors) {
			l.inconsistent++
		}
	}
	var acc int64
	for i, r := range l.pending {
		if l.drop[i] {
			l.rejected++
			continue
		}
		acc++
		g := &r.a.sigs[r.seq]
		vi := &l.visits[r.a.j]
		vi.accepted |= 1 << r.seq
		vi.flags |= fAny
		switch g.Type {
		case "pageview":
			if vi.landing < 0 {
				vi.landing = int8(g.Page)
			}
		case "exposure":
			if vi.variant < 0 {
				vi.variant = int8(g.Variant)
			}
		case "event":
			if g.Name == Goal {
				vi.flags |= fConverted
				if vi.variant >= 0 {
					vi.flags |= fConvExp
				}
			}
		}
	}
	l.accepted.Add(acc)
	return acc
}

// classify names a transport error, and says whether the request may have reached the
// server (then what it carried has an unknown fate).
func classify(err error) (kind string, mayHaveArrived bool) {
	var op *net.OpError
	switch {
	case errors.Is(err, errTimeout):
		return "timeout", true
	case errors.As(err, &op) && op.Op == "dial":
		if op.Timeout() {
			return "connect timeout", false
		}
		return "connect: " + op.Err.Error(), false
	case errors.Is(err, errConnClosed), errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection closed", true
	case errors.Is(err, errBadAnswer):
		return "malformed answer", true
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s, true
}

// Run drives the load, finishes the visitors' journeys, and returns what happened. It
// returns when the duration or count is reached, or ctx ends (then without finishing
// the journeys). Every goroutine it starts has exited, and every connection it opened
// is closed, when it returns.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := CheckTarget(ctx, cfg.Target, cfg.AllowRemote); err != nil {
		return nil, err
	}
	us, _ := Targets(cfg.Target)
	hosts := make([]string, len(us))
	for i, u := range us {
		hosts[i] = u.Host
		if u.Port() == "" {
			hosts[i] += ":80"
		}
		// A target that is not up fails the run at once, not as a run of refused requests.
		if c, err := (&net.Dialer{Timeout: cfg.Timeout}).DialContext(ctx, "tcp", hosts[i]); err != nil {
			return nil, fmt.Errorf("connect to the target %s: %w", hosts[i], err)
		} else {
			c.Close()
		}
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	r := &runner{cfg: &cfg, stop: stop}
	for i := range cfg.Connections {
		t := i % len(us)
		r.lanes = append(r.lanes, newLane(r, i, hosts[t], us[t].Host))
	}
	defer func() {
		for _, l := range r.lanes {
			l.http.close()
		}
	}()

	r.start = time.Now()
	deadline := time.Duration(math.MaxInt64)
	if cfg.Duration > 0 {
		deadline = cfg.Duration
	}
	tick := newTicker(r)
	tickDone := make(chan struct{})
	stopTick := make(chan struct{})
	// The ticker exits when stopTick is closed, after every lane has finished.
	go func() { defer close(tickDone); tick.run(stopTick) }()

	var wg sync.WaitGroup
	timedDone := make(chan struct{})
	var timedLeft atomic.Int64
	timedLeft.Store(int64(len(r.lanes)))
	var loopErr error
	if cfg.Rate == 0 && canPoll {
		wg.Add(1)
		// The event loops return when every lane is done (see closedLoop).
		go func() {
			defer wg.Done()
			loopErr = r.closedLoop(ctx, deadline, timedDone)
		}()
	}
	for _, l := range r.lanes {
		if cfg.Rate == 0 && canPoll {
			break
		}
		wg.Add(1)
		// Each lane exits after its timed phase and its finish phase, or when ctx ends.
		go func() {
			defer wg.Done()
			l.timed(ctx, deadline)
			if timedLeft.Add(-1) == 0 {
				close(timedDone)
			}
			if ctx.Err() == nil {
				l.finish(ctx)
			}
		}()
	}
	<-timedDone
	elapsed := r.clock()
	tick.endTimed()
	wg.Wait()
	finished := r.clock()
	close(stopTick)
	<-tickDone
	tick.endFinish()
	if loopErr != nil {
		return nil, fmt.Errorf("drive the load: %w", loopErr)
	}
	if code := r.refused.Load(); code != 0 {
		return nil, fmt.Errorf("%w: POST /collect answered %d: the target wants credentials the load generator does not send", ErrUnauthorized, code)
	}
	return r.result(tick, elapsed, finished), nil
}

const userAgent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 rung-bench"

// timed is the lane's measured phase.
func (l *lane) timed(ctx context.Context, deadline time.Duration) {
	cfg := l.run.cfg
	if cfg.Rate == 0 {
		for now := l.run.clock(); ctx.Err() == nil && now < deadline; {
			if cfg.Count > 0 && l.run.claimed.Add(1) > cfg.Count {
				return
			}
			now, _ = l.send(-1, now, true, false)
		}
		return
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	L := int64(len(l.run.lanes))
	for k := int64(l.id); cfg.Count == 0 || k < cfg.Count; k += L {
		due := cfg.intended(k)
		if due >= deadline {
			return
		}
		if !l.waitUntil(ctx, timer, due) {
			return
		}
		l.send(due, -1, true, false)
	}
}

// waitUntil waits on timer until due on the run clock; false if ctx ends first.
func (l *lane) waitUntil(ctx context.Context, timer *time.Timer, due time.Duration) bool {
	wait := due - l.run.clock()
	if wait <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(wait)
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// MaxAutoFinish bounds an open-loop finish phase left to size itself (Config.Finish 0).
const MaxAutoFinish = 10 * time.Minute

// finish completes the journeys of the lane's visitors, untimed: in closed loop as fast
// as answers come, in open loop on the schedule's rate, the lane taking every L-th slot
// as in the timed phase, so the server sees the same rate in both phases.
func (l *lane) finish(ctx context.Context) {
	cfg := l.run.cfg
	start := l.run.clock()
	if cfg.Rate == 0 {
		deadline := start + cfg.Finish
		for now := start; ctx.Err() == nil && now < deadline; {
			var ok bool
			if now, ok = l.send(-1, now, false, true); !ok {
				return
			}
		}
		return
	}
	L := int64(len(l.run.lanes))
	slot := func(n int64) time.Duration {
		return time.Duration(float64(int64(l.id)+n*L) / cfg.Rate * float64(time.Second))
	}
	deadline := start + cfg.Finish
	if cfg.Finish == 0 {
		// As long as the requests left need at the rate, with room for slow answers.
		deadline = start + min(MaxAutoFinish, max(30*time.Second, 2*slot(l.left())))
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for n := int64(0); ; n++ {
		due := start + slot(n)
		if due >= deadline {
			return
		}
		if !l.waitUntil(ctx, timer, due) {
			return
		}
		if _, ok := l.send(-1, -1, false, true); !ok {
			return
		}
	}
}

// left is how many requests the lane's started journeys still need, at most.
func (l *lane) left() int64 {
	var n int64
	for _, a := range l.heap {
		n += int64(len(a.sigs) - a.next)
	}
	for _, a := range l.held {
		n += int64(len(a.sigs) - a.next)
	}
	return n
}

// newLane makes connection i's lane; addr is the address it dials, host its Host header.
func newLane(r *runner, i int, addr, host string) *lane {
	l := &lane{id: i, run: r,
		cur: NewHistogram(), steady: NewHistogram(), steadySvc: NewHistogram(),
		errs: map[string]int64{}, reasons: map[string]int64{},
		modelVariant: make([][2]int64, len(r.cfg.Model.Experiment.Variants)), src: rand.NewPCG(0, 0)}
	l.rng = rand.New(l.src)
	l.http = newConn(addr, host, "/collect", "text/plain;charset=UTF-8", userAgent, r.cfg.Timeout, &l.conn)
	return l
}

// dueBy is how many requests the open-loop schedule had due by elapsed, or by the end
// of the timed phase if that came first (capped by Count). Lanes send no timed request
// after Duration, however long the last answers take to come back: counting what fell
// due while they did would charge the generator for requests it was never to send.
func (r *runner) dueBy(elapsed time.Duration) int64 {
	if r.cfg.Duration > 0 {
		elapsed = min(elapsed, r.cfg.Duration)
	}
	n := r.cfg.due(elapsed)
	if r.cfg.Count > 0 {
		n = min(n, r.cfg.Count)
	}
	return n
}

// visit returns the run's record of visitor v, or nil if the run never started them.
func (res *Result) visit(v int64) *visit {
	if v < 0 || len(res.lanes) == 0 {
		return nil
	}
	l := res.lanes[v%int64(len(res.lanes))]
	j := v / int64(len(res.lanes))
	if j >= int64(len(l.visits)) {
		return nil
	}
	return &l.visits[j]
}

func fmtInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	if n < 0 {
		return "-" + fmtInt(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
