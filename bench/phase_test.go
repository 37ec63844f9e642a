package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
)

// TestFinishKeepsToTheRate: against a real rung serve, the finish phase of an open-loop
// run sends no faster than --rate. Each lane takes every L-th slot of the schedule from
// the moment its timed phase ends, so by the end of the phase at most rate × its length
// + one request per lane (and one more for a lane that ended its timed phase a slot
// early) can have been sent, however the machine is loaded. Unthrottled, the same
// journeys were finished at many times the rate. The finish phase is reported apart:
// its own series, marked so, with no latency figures.
func TestFinishKeepsToTheRate(t *testing.T) {
	base, _ := serve(t)
	const rate, conns = 300.0, 8
	var progress harness.Output // the ticker writes it while the run goes on
	res, err := Run(context.Background(), Config{Target: base, Rate: rate, Connections: conns, Duration: time.Second,
		Model: DefaultModel(3, "finish01"), Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	fin, d := res.FinishRequests, res.FinishElapsed.Seconds()
	// Enough finish requests for the bound to mean something: a run of 1s at 300/s
	// leaves hundreds of journeys open.
	if fin < 100 || res.Unfinished != 0 {
		t.Fatalf("finish phase: %d requests, %d visitors unfinished; want a hundred or more, and none", fin, res.Unfinished)
	}
	if bound := rate*d + 2*conns; float64(fin) > bound {
		t.Errorf("finish phase sent %d requests in %.2fs: %.0f/s, over the rate %.0f/s (bound %.0f)", fin, d, float64(fin)/d, rate, bound)
	}
	t.Logf("timed: %d requests in %.2fs; finish: %d requests in %.2fs (%.0f/s at a rate of %.0f/s)",
		res.Requests, res.Elapsed.Seconds(), fin, d, float64(fin)/d, rate)
	for _, p := range res.Series {
		if p.Phase != PhaseTimed {
			t.Errorf("timed series point at %.1fs is marked %q", p.T, p.Phase)
		}
	}
	if d >= 2 && len(res.FinishSeries) == 0 {
		t.Errorf("a finish phase of %.1fs has no series", d)
	}
	for _, p := range res.FinishSeries {
		if p.Phase != PhaseFinish || p.P99 != 0 || p.Target != rate {
			t.Errorf("finish series point %+v: want phase finish, no latency, target %v", p, rate)
		}
	}
	rep := NewReport(res, nil)
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "(target 300/s), untimed") {
		t.Errorf("the text report does not give the finish phase its own rate:\n%s", text.String())
	}
	var html strings.Builder
	if err := rep.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	if len(res.FinishSeries) > 0 && (!strings.Contains(html.String(), "finish requests/s") || !strings.Contains(html.String(), "finish →")) {
		t.Errorf("the HTML charts do not draw the finish phase apart")
	}
	for _, p := range res.FinishSeries {
		if !strings.Contains(progress.String(), fmt.Sprintf("%6.1fs  finish", p.T)) {
			t.Errorf("no progress line marked finish at %.1fs:\n%s", p.T, progress.String())
		}
	}
}

// TestUnauthorizedFailsFast: a stats API that refuses the credentials ends the
// verification's wait at its first answer, and is caught before a run by
// CheckStatsAccess; a /collect that answers 401 (a proxy wanting credentials) stops the
// run at once with ErrUnauthorized.
func TestUnauthorizedFailsFast(t *testing.T) {
	base, _ := serve(t, "--api-token", "s3cret")
	ctx := context.Background()
	if err := CheckStatsAccess(ctx, base, ""); !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "--api-token") {
		t.Errorf("CheckStatsAccess without the token: %v", err)
	}
	if err := CheckStatsAccess(ctx, base, "s3cret"); err != nil {
		t.Errorf("CheckStatsAccess with the token: %v", err)
	}
	res, err := Run(ctx, Config{Target: base, Connections: 2, Count: 40, Model: DefaultModel(4, "authfail")})
	if err != nil {
		t.Fatal(err)
	}
	v := Verify(ctx, res, VerifyOptions{StatsURL: base, Wait: time.Minute})
	if s := v.Stats; s.Status != StatusFailed || s.Attempts != 1 || !strings.Contains(s.Note, "answered 401") {
		t.Errorf("stats check without the token: %s after %d attempts (%s); want FAILED at the first", s.Status, s.Attempts, s.Note)
	}

	var hits atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		hits.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="rung"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer proxy.Close()
	for _, rate := range []float64{0, 500} {
		hits.Store(0)
		const count = 100_000
		_, err := Run(ctx, Config{Target: proxy.URL, Rate: rate, Connections: 4, Count: count, Model: DefaultModel(4, "authfai2")})
		if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "401") {
			t.Errorf("rate %v: a /collect answering 401: %v", rate, err)
		}
		// Each lane may have had one request in flight, and sent one more, before it saw
		// the run stop; nothing like the count.
		if n := hits.Load(); n > 3*4 {
			t.Errorf("rate %v: the server saw %d requests after refusing the first", rate, n)
		}
	}
}
