package bench

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestCheckTarget(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		target      string
		allowRemote bool
		want        error // nil: accepted; ErrNotLoopback; errAny: some other error
	}{
		{"http://127.0.0.1:8080", false, nil},
		{"http://127.9.9.9:8080", false, nil},
		{"http://[::1]:8080", false, nil},
		{"http://localhost:8080", false, nil},
		{"http://10.1.2.3:8080", false, ErrNotLoopback},
		{"http://192.168.1.10", false, ErrNotLoopback},
		{"http://8.8.8.8:80", false, ErrNotLoopback},
		{"http://[2001:db8::1]:80", false, ErrNotLoopback},
		{"http://0.0.0.0:8080", false, ErrNotLoopback},
		{"http://10.1.2.3:8080", true, nil},
		{"https://127.0.0.1:8080", false, errAny},
		{"127.0.0.1:8080", false, errAny},
		{"http://127.0.0.1:8080/collect", false, errAny},
		{"http://127.0.0.1:8080,http://localhost:8081", false, nil},
		{"http://127.0.0.1:8080, http://10.1.2.3:8080", false, ErrNotLoopback},
		{"http://127.0.0.1:8080,", false, errAny},
		{"http://127.0.0.1:8080,ftp://127.0.0.1:21", false, errAny},
	} {
		err := CheckTarget(ctx, c.target, c.allowRemote)
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s (allow remote %v): refused: %v", c.target, c.allowRemote, err)
		case c.want == ErrNotLoopback && !errors.Is(err, ErrNotLoopback):
			t.Errorf("%s: got %v, want %v", c.target, err, ErrNotLoopback)
		case c.want == errAny && err == nil:
			t.Errorf("%s: accepted a target that is not http://host:port", c.target)
		}
	}
}

var errAny = errors.New("any error")

// TestRunRefusesRemote: a run against a non-loopback address fails before sending
// anything (nothing listens at 10.255.255.1 here; a send would time out, not fail fast).
func TestRunRefusesRemote(t *testing.T) {
	defer goleak.VerifyNone(t)
	cfg := Config{Target: "http://10.255.255.1:8080", Duration: time.Second, Model: DefaultModel(1, "remote1")}
	res, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrNotLoopback) || res != nil {
		t.Fatalf("Run = %v, %v; want ErrNotLoopback and no result", res, err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := func() Config {
		return Config{Target: "http://127.0.0.1:1", Duration: time.Second, Model: DefaultModel(1, "conf1")}
	}
	c := good()
	if err := c.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, bad := range []struct {
		name string
		edit func(c *Config)
	}{
		{"no end", func(c *Config) { c.Duration = 0 }},
		{"ramp in closed loop", func(c *Config) { c.Ramp = time.Second }},
		{"negative rate", func(c *Config) { c.Rate = -1 }},
		{"zero-signal batch", func(c *Config) { c.Batch = -1 }},
		{"bad model", func(c *Config) { c.Model.Run = "x" }},
		{"bad target", func(c *Config) { c.Target = "ftp://127.0.0.1" }},
	} {
		c := good()
		bad.edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate = %v, want ErrConfig", bad.name, err)
		}
	}
}

func TestSchedule(t *testing.T) {
	for _, c := range []Config{{Rate: 1000}, {Rate: 1000, Ramp: 2 * time.Second}, {Rate: 7, Ramp: 10 * time.Second}} {
		for k := int64(0); k < 5000; k += 37 {
			at := c.intended(k)
			// due counts the requests due by a time; just after request k's time it
			// includes k (k+1 requests), just before it does not.
			if n := c.due(at + time.Microsecond); n < k+1 {
				t.Fatalf("rate %v ramp %v: due(intended(%d)+1µs) = %d", c.Rate, c.Ramp, k, n)
			}
			if k > 0 {
				if n := c.due(at - time.Microsecond); n > k {
					t.Fatalf("rate %v ramp %v: due(intended(%d)-1µs) = %d", c.Rate, c.Ramp, k, n)
				}
				if at < c.intended(k-1) {
					t.Fatalf("schedule goes back in time at %d", k)
				}
			}
		}
		// After the ramp, the rate is the target.
		t0 := c.Ramp + time.Second
		if got := float64(c.due(t0+10*time.Second)-c.due(t0)) / 10; math.Abs(got-c.Rate) > 0.2 {
			t.Errorf("rate after the ramp %v, want %v", got, c.Rate)
		}
	}
}

// stallServer answers like rung's /collect, but stalls every request for stall once
// the trigger-th request arrives: a GC pause, a full disk, a lock held too long.
type stallServer struct {
	mu      sync.Mutex
	n       int
	until   time.Time
	trigger int
	stall   time.Duration
}

func (s *stallServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.n++
	if s.n == s.trigger {
		s.until = time.Now().Add(s.stall)
	}
	wait := time.Until(s.until)
	s.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait) // the injected fault
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	w.Write([]byte(`{"accepted":1,"rejected":0}` + "\n"))
}

// TestCoordinatedOmission: in open loop, a one-second stall must show in the latency of
// every request that was due during it, not only the few in flight when it began. A calm
// run against the same kind of server first gives this machine's service time as it is
// loaded now, which the stall must not move.
func TestCoordinatedOmission(t *testing.T) {
	defer goleak.VerifyNone(t)
	const rate, stall = 400.0, time.Second
	run := func(s *stallServer, d time.Duration, tag string) *Result {
		t.Helper()
		srv := httptest.NewServer(s)
		defer srv.Close()
		res, err := Run(context.Background(), Config{Target: srv.URL, Rate: rate, Connections: 4, Duration: d,
			Model: DefaultModel(1, tag), Finish: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if lat, svc := res.Latency, res.Service; lat.Count() != svc.Count() || lat.Count() < uint64(res.Due)*9/10 {
			t.Fatalf("%s: %d corrected and %d service latencies of %d requests due; want the same, and at least 90%% of those due",
				tag, lat.Count(), svc.Count(), res.Due)
		}
		return res
	}
	calm := run(&stallServer{trigger: -1}, time.Second, "calm0001")
	res := run(&stallServer{trigger: 300, stall: stall}, 2500*time.Millisecond, "stall01")
	lat, svc := res.Latency, res.Service
	calmLat, calmSvc := calm.Latency.Quantile(0.9), calm.Service.Quantile(0.9)
	// About 400 of the ~1000 requests were due during the stall, waiting from 0 to 1s
	// before they could be sent: the corrected p90 lies near 0.75s over the service-time
	// p90 of the same run (a generator late on a loaded machine only adds to it).
	// Uncorrected, only the 4 in flight see the stall: the service-time p90 stays where
	// the calm run's is.
	if p, s := lat.Quantile(0.9), svc.Quantile(0.9); p-s < stall*4/10 {
		t.Errorf("corrected p90 %v, service-time p90 %v: the stall is missing from the latency of the requests it delayed", p, s)
	}
	if p := svc.Quantile(0.9); p-calmSvc > stall/5 {
		t.Errorf("service-time p90 %v, %v calm: the uncorrected figure should hide the stall", p, calmSvc)
	}
	t.Logf("p90 corrected %v (calm %v), service %v (calm %v)", lat.Quantile(0.9), calmLat, svc.Quantile(0.9), calmSvc)
	var slow uint64
	for q := 0.5; q < 1; q += 0.01 {
		if lat.Quantile(q) >= stall/2 {
			slow = uint64((1 - q) * float64(lat.Count()))
			break
		}
	}
	if want := uint64(rate * stall.Seconds() / 2 * 0.6); slow < want {
		t.Errorf("%d requests waited half the stall or more; at %v/s about %v should have", slow, rate, rate*stall.Seconds()/2)
	}
	if res.Due == 0 || float64(res.Requests)/float64(res.Due) < 0.9 {
		t.Errorf("sent %d of %d due: the generator should catch up after the stall", res.Requests, res.Due)
	}
}

// hangServer answers like rung's /collect but never answers the hang-th request.
type hangServer struct {
	mu      sync.Mutex
	n, hang int
	release chan struct{}
}

func (s *hangServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	if n == s.hang {
		<-s.release
		return
	}
	w.WriteHeader(http.StatusAccepted)
	w.Write([]byte(`{"accepted":1,"rejected":0}`))
}

// TestTimeout: a request left unanswered is cut off after the timeout, counted as a
// timeout, and what it carried has an unknown fate; the run still ends by itself.
func TestTimeout(t *testing.T) {
	defer goleak.VerifyNone(t)
	hs := &hangServer{hang: 5, release: make(chan struct{})}
	srv := httptest.NewServer(hs)
	defer srv.Close()
	defer close(hs.release)
	res, err := Run(context.Background(), Config{Target: srv.URL, Connections: 2, Count: 40, Timeout: 300 * time.Millisecond,
		Model: DefaultModel(1, "hang0001"), Finish: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors["timeout"] != 1 || res.Unknown != 1 || res.Requests != 40 || res.Status[202] != res.Requests+res.FinishRequests-1 {
		t.Errorf("errors %v, unknown %d, requests %d, statuses %v", res.Errors, res.Unknown, res.Requests, res.Status)
	}
	tr := res.Truth()
	if tr.Uncertain != 1 {
		t.Errorf("%d uncertain visitors, want the one whose signal timed out", tr.Uncertain)
	}
}

// TestTargetDown: a target with nothing listening fails the run before it starts.
func TestTargetDown(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()
	_, err := Run(context.Background(), Config{Target: addr, Duration: time.Second, Model: DefaultModel(1, "down0001")})
	if err == nil || !strings.Contains(err.Error(), "connect to the target") {
		t.Fatalf("Run against a closed port: %v", err)
	}
}

// closingServer answers like rung's /collect, but closes the connection after every
// third answer and refuses every fifth request with 503.
type closingServer struct {
	mu sync.Mutex
	n  int
}

func (s *closingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.n++
	n := s.n
	s.mu.Unlock()
	if n%3 == 0 {
		w.Header().Set("Connection", "close")
	}
	if n%5 == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"buffer full"}`))
		return
	}
	w.WriteHeader(http.StatusAccepted)
	w.Write([]byte(`{"accepted":1,"rejected":0}`))
}

// TestClosedLoopReconnects: a server that closes connections and refuses some requests
// costs no request its fate: every one is answered, on a fresh connection when need be,
// and booked as the server said.
func TestClosedLoopReconnects(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv := httptest.NewServer(&closingServer{})
	defer srv.Close()
	res, err := Run(context.Background(), Config{Target: srv.URL, Connections: 4, Count: 300,
		Model: DefaultModel(1, "close001"), Finish: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	all := res.Requests + res.FinishRequests
	if res.Requests != 300 || len(res.Errors) != 0 || res.Unknown != 0 || res.Status[202]+res.Status[503] != all ||
		res.Accepted != res.Status[202] || res.Rejected != res.Status[503] || res.Reasons["HTTP 503: buffer full"] != res.Status[503] {
		t.Errorf("requests %d+%d, errors %v, unknown %d, statuses %v, accepted %d, rejected %d, reasons %v",
			res.Requests, res.FinishRequests, res.Errors, res.Unknown, res.Status, res.Accepted, res.Rejected, res.Reasons)
	}
	if res.Unfinished != 0 {
		t.Errorf("%d visitors unfinished", res.Unfinished)
	}
}

// TestTargets: several targets share the connections, in closed and in open loop, and
// each answers its share of the requests.
func TestTargets(t *testing.T) {
	defer goleak.VerifyNone(t)
	var hits [2]atomic.Int64
	var srvs [2]*httptest.Server
	for i := range srvs {
		srvs[i] = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			hits[i].Add(1)
			w.WriteHeader(http.StatusAccepted)
			w.Write([]byte(`{"accepted":1,"rejected":0}`))
		}))
		defer srvs[i].Close()
	}
	for _, rate := range []float64{0, 400} {
		hits[0].Store(0)
		hits[1].Store(0)
		// A duration, not a count: a count can be used up by one event loop's lanes
		// before the other's have started.
		res, err := Run(context.Background(), Config{Target: srvs[0].URL + "," + srvs[1].URL, Rate: rate, Connections: 4,
			Duration: 500 * time.Millisecond, Model: DefaultModel(1, "targets1"), Finish: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if a, b := hits[0].Load(), hits[1].Load(); a == 0 || b == 0 || a+b != res.Requests+res.FinishRequests {
			t.Errorf("rate %v: targets answered %d and %d requests, the run made %d (errors %v)", rate, a, b, res.Requests+res.FinishRequests, res.Errors)
		}
	}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	if _, err := Run(context.Background(), Config{Target: srvs[0].URL + "," + down.URL, Duration: time.Second,
		Model: DefaultModel(1, "targets2")}); err == nil || !strings.Contains(err.Error(), "connect to the target") {
		t.Errorf("a run with one target down: %v", err)
	}
}
