package snippet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/chromedp/chromedp"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink/sqlite"
)

// checkFor calls f every step until it returns nil, and fails the test with f's last
// error once total has passed.
func checkFor(t *testing.T, total, step time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %v: %v", total, err)
		}
		time.Sleep(step)
	}
}

// The rung binary is built once per test run, the first time a test needs it.
var rungBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if rungBin.dir != "" {
		os.RemoveAll(rungBin.dir)
	}
	os.Exit(code)
}

// buildRung builds ./cmd/rung once per run; RUNG_TEST_BIN names a binary to use
// instead (one built from a known commit while the tree is mid-edit).
func buildRung(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("RUNG_TEST_BIN"); bin != "" {
		return bin
	}
	rungBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "rung-snippet-test-")
		if err != nil {
			rungBin.err = err
			return
		}
		rungBin.dir = dir
		rungBin.path = filepath.Join(dir, "rung")
		cmd := exec.Command("go", "build", "-o", rungBin.path, "github.com/rungdev/rung/cmd/rung")
		if out, err := cmd.CombinedOutput(); err != nil {
			rungBin.err = fmt.Errorf("go build ./cmd/rung: %v\n%s", err, out)
		}
	})
	if rungBin.err != nil {
		t.Fatal(rungBin.err)
	}
	return rungBin.path
}

// freeAddr returns a 127.0.0.1 address with a port nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// rung is a `rung serve` process on the embedded SQLite sink.
type rung struct {
	t       *testing.T
	addr    string
	dataDir string
	cmd     *exec.Cmd
	done    chan error
	log     *lockedBuffer
}

// startRung runs `rung serve` on addr with its store in dataDir and waits until it
// answers /healthz. The test's cleanup kills it if the test has not stopped it.
func startRung(t *testing.T, addr, dataDir string) *rung {
	t.Helper()
	r := &rung{t: t, addr: addr, dataDir: dataDir, done: make(chan error, 1), log: &lockedBuffer{}}
	r.cmd = exec.Command(buildRung(t), "serve", "--listen", addr, "--data-dir", dataDir,
		"--flush-interval", "50ms", "--log-level", "debug")
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
	checkFor(t, 15*time.Second, 20*time.Millisecond, func() error {
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
	checkFor(r.t, total, 25*time.Millisecond, func() error {
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

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newBrowser starts Debian's headless Chromium with a fresh profile and returns the
// context of its first tab. The test's cleanup closes the browser.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatalf("chromium: %v (apt-get install chromium)", err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser now, so that a later NewContext opens a second tab of it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
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
	checkFor(t, 10*time.Second, 20*time.Millisecond, func() error {
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
