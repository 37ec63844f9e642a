package snippet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/chromedp/chromedp"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink/sqlite"
)

// rung is a `rung serve` process on the embedded SQLite sink.
type rung struct {
	t       *testing.T
	addr    string
	dataDir string
	cmd     *exec.Cmd
	done    chan error
	log     *harness.Output
}

// startRung runs `rung serve` on addr with its store in dataDir and waits until it
// answers /healthz. The test's cleanup kills it if the test has not stopped it.
func startRung(t *testing.T, addr, dataDir string, args ...string) *rung {
	t.Helper()
	r := &rung{t: t, addr: addr, dataDir: dataDir, done: make(chan error, 1), log: &harness.Output{}}
	r.cmd = exec.Command(harness.RungBinary(t), append([]string{"serve", "--listen", addr, "--data-dir", dataDir,
		"--flush-interval", "50ms", "--log-level", "debug"}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start rung serve: %v", err)
	}
	go func() { r.done <- r.cmd.Wait() }() // exits when the process does
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			t.Logf("rung serve on %s said:\n%s", addr, r.log.String())
		}
	})
	harness.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		select {
		case err := <-r.done:
			t.Fatalf("rung serve exited early: %v\n%s", err, r.log.String())
		default:
		}
		res, err := http.Get(r.url("/healthz"))
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("/healthz: %s", res.Status)
		}
		return nil
	})
	return r
}

func (r *rung) url(path string) string { return "http://" + r.addr + path }

// stop sends SIGTERM, on which rung drains its buffer into the sink, and waits for
// the process to exit cleanly.
func (r *rung) stop() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatalf("SIGTERM rung: %v", err)
	}
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Fatalf("rung serve exited with %v\n%s", err, r.log.String())
		}
	case <-time.After(20 * time.Second):
		r.t.Fatalf("rung serve did not stop within 20s of SIGTERM\n%s", r.log.String())
	}
}

var acceptedRe = regexp.MustCompile(`(?m)^rung_signals_accepted_total (\d+)`)

// accepted reads the collector's count of accepted signals from /metrics.
func (r *rung) accepted() (int, error) {
	res, err := http.Get(r.url("/metrics"))
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	m := acceptedRe.FindSubmatch(b)
	if m == nil {
		return 0, errors.New("no rung_signals_accepted_total in /metrics")
	}
	return strconv.Atoi(string(m[1]))
}

// waitAccepted polls /metrics until the collector has accepted at least n signals.
func (r *rung) waitAccepted(n int, total time.Duration) {
	r.t.Helper()
	harness.CheckFor(r.t, total, 25*time.Millisecond, func() error {
		got, err := r.accepted()
		if err != nil {
			return err
		}
		if got < n {
			return fmt.Errorf("rung accepted %d signals, waiting for %d", got, n)
		}
		return nil
	})
}

// readSink returns every signal stored in dataDir's SQLite sink. Call it after the
// rung that wrote there has stopped.
func readSink(t *testing.T, dataDir string) []schemas.Signal {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dataDir, "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatalf("open the sink: %v", err)
	}
	defer s.Close()
	sigs, err := s.Signals(ctx, 0, math.MaxInt64)
	if err != nil {
		t.Fatalf("read the sink: %v", err)
	}
	return sigs
}

// newTab opens a tab in the browser of ctx. Closing it (closeTab) closes the page as
// a person would: the page gets pagehide.
func newTab(t *testing.T, browser context.Context) (context.Context, func()) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	t.Cleanup(cancel)
	return ctx, func() {
		if err := chromedp.Cancel(ctx); err != nil {
			t.Fatalf("close the tab: %v", err)
		}
	}
}

// run runs browser actions and fails the test on error.
func run(t *testing.T, ctx context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitJS polls until a JavaScript expression is true in the page.
func waitJS(t *testing.T, ctx context.Context, js string) {
	t.Helper()
	harness.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		ok, err := chromedp.Run(tctx, chromedp.Evaluate[bool]("!!("+js+")"))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("waiting for %s", js)
		}
		return nil
	})
}

// runValue runs a browser action that returns a value.
func runValue[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}
