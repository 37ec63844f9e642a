package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/internal/testport"
)

// proc is a running `rung serve` or `rung aggregate`.
type proc struct {
	t      *testing.T
	sub    string // the subcommand
	cmd    *exec.Cmd
	addr   string
	stderr *harness.Output
	done   chan error
	// ledger records what tests sent p through p.collect, with seq numbering its event_ids.
	ledger *harness.Ledger
	seq    atomic.Int64
}

// startServe runs `rung serve` with args on a free port and waits until /healthz answers.
func startServe(t *testing.T, args ...string) *proc {
	t.Helper()
	return startRung(t, "serve", args...)
}

// startRung runs a rung subcommand that serves HTTP (serve, aggregate) with args on a
// free port, and waits until /healthz answers.
func startRung(t *testing.T, sub string, args ...string) *proc {
	t.Helper()
	return startRungEnv(t, nil, sub, args...)
}

// startRungEnv is startRung with env added to the process's environment.
func startRungEnv(t *testing.T, env []string, sub string, args ...string) *proc {
	t.Helper()
	// A port below the ephemeral range: the load tests' client connections take their
	// local ports from that range, and a restarted server binds its port again.
	addr := "127.0.0.1:" + strconv.Itoa(testport.Stable(t))
	p := &proc{t: t, sub: sub, addr: addr, stderr: &harness.Output{}, done: make(chan error, 1), ledger: harness.NewLedger()}
	// A data directory of its own unless args name one (the last flag wins): serve locks
	// its directory, and the default one is shared by every test.
	p.cmd = exec.Command(harness.RungBinary(t), append([]string{sub, "--listen", p.addr, "--data-dir", t.TempDir()}, args...)...)
	p.cmd.Stderr = p.stderr
	p.cmd.Env = append(append(os.Environ(), "RUNG_LOG_LEVEL=info", "GOTRACEBACK=all"), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("rung %s stderr:\n%s", sub, p.stderr.String())
		}
	})
	// A restarted server replays its write-ahead log (tens of thousands of signals into
	// the sink) before it listens: a few seconds, more on a machine loaded with other
	// packages' tests. One not up by then is asked what it is doing.
	const wait = 90 * time.Second
	deadline := time.Now().Add(wait)
	for {
		select {
		case err := <-p.done:
			p.done <- err // for the cleanup
			t.Fatalf("rung %s exited early (its stderr follows): %v", sub, err)
		default:
		}
		err := p.up()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			p.quit()
			t.Fatalf("rung %s not up after %v (its stderr, with its goroutines at SIGQUIT, follows): %v", sub, wait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// up says whether the process is up: listening, and saying so in its log.
func (p *proc) up() error {
	resp, err := http.Get(p.url("/healthz"))
	if err != nil {
		return err
	}
	resp.Body.Close()
	// The answer is this process's only once it says it listens there: another
	// test's server may have taken the port between its choice and the bind.
	if !strings.Contains(p.stderr.String(), "addr="+p.addr) {
		return fmt.Errorf("rung %s has not said it listens on %s yet", p.sub, p.addr)
	}
	return nil
}

// quit ends a process that is not up with SIGQUIT, whose goroutine dump (every
// goroutine: the test sets GOTRACEBACK=all) goes to its stderr, which the cleanup logs:
// what it was doing.
func (p *proc) quit() {
	if p.cmd.Process.Signal(syscall.SIGQUIT) == nil {
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(10 * time.Second):
		}
	}
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.terminate(); err != nil {
		p.t.Fatalf("rung %s exited with %v after SIGTERM\n%s", p.sub, err, p.stderr.String())
	}
}

// terminate sends SIGTERM and returns how the process exited (an *exec.ExitError for
// a non-zero status); it fails the test if the process has not exited within 60 s.
func (p *proc) terminate() error {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(60 * time.Second):
		p.t.Fatalf("rung %s did not exit within 60s of SIGTERM\n%s", p.sub, p.stderr.String())
		return nil
	}
}

// kill ends the process at once, as a crash would (SIGKILL).
func (p *proc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.t.Fatal(err)
	}
	<-p.done
}

// dropped returns the accepted signals p counted dropped, for every reason
// (rung_signals_dropped_total).
func (p *proc) dropped() int {
	p.t.Helper()
	n := 0.0
	for line := range strings.Lines(p.metricsText()) {
		if rest, ok := strings.CutPrefix(line, "rung_signals_dropped_total{"); ok {
			_, v, _ := strings.Cut(rest, "} ")
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				p.t.Fatalf("%s: %v", line, err)
			}
			n += f
		}
	}
	return int(n)
}

// stopDrops returns how many accepted signals a stopped rung serve said it dropped while
// stopping (the drain deadline passed, the sink gave up): its /metrics are gone by then.
func (p *proc) stopDrops() int {
	p.t.Helper()
	m := regexp.MustCompile(`(\d+) accepted signals dropped while stopping`).FindStringSubmatch(p.stderr.String())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// collectRequest is a POST of batch to url (a /collect) as t.js sends it: text/plain,
// from a browser, since a bot's signals are left out of the rollups. It returns the
// batch's event_ids in order, for a harness.Ledger.
func collectRequest(url string, batch []map[string]any) (*http.Request, []string) {
	ids := make([]string, len(batch))
	for i, s := range batch {
		ids[i] = s["event_id"].(string)
	}
	body, err := json.Marshal(batch)
	if err != nil {
		panic(err) // the tests' own maps of strings and numbers
	}
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("User-Agent", harness.BrowserUA)
	return req, ids
}

// metricsText returns p's /metrics.
func (p *proc) metricsText() string {
	p.t.Helper()
	resp, err := http.Get(p.url("/metrics"))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		p.t.Fatalf("GET /metrics: %d %v: %.300s", resp.StatusCode, err, b)
	}
	return string(b)
}

// metric returns the value of one series from /metrics.
func (p *proc) metric(name string) float64 {
	p.t.Helper()
	b := p.metricsText()
	for _, line := range strings.Split(b, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				p.t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	p.t.Fatalf("metric %s not in /metrics (%d bytes): %.300s", name, len(b), b)
	return 0
}
