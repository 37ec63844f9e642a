package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
)

// proc is a running `rung serve` or `rung aggregate`.
type proc struct {
	t      *testing.T
	sub    string // the subcommand
	cmd    *exec.Cmd
	addr   string
	stderr *harness.Output
	done   chan error
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
	p := &proc{t: t, sub: sub, addr: harness.FreeAddr(t), stderr: &harness.Output{}, done: make(chan error, 1)}
	// A data directory of its own unless args name one (the last flag wins): serve locks
	// its directory, and the default one is shared by every test.
	p.cmd = exec.Command(harness.RungBinary(t), append([]string{sub, "--listen", p.addr, "--data-dir", t.TempDir()}, args...)...)
	p.cmd.Stderr = p.stderr
	p.cmd.Env = append(append(os.Environ(), "RUNG_LOG_LEVEL=info"), env...)
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
	harness.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		select {
		case err := <-p.done:
			return fmt.Errorf("rung %s exited early: %v\n%s", sub, err, p.stderr.String())
		default:
		}
		resp, err := http.Get(p.url("/healthz"))
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return p
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("rung %s exited with %v after SIGTERM\n%s", p.sub, err, p.stderr.String())
		}
	case <-time.After(60 * time.Second):
		p.t.Fatalf("rung %s did not exit within 60s of SIGTERM\n%s", p.sub, p.stderr.String())
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

// metric returns the value of one series from /metrics.
func (p *proc) metric(name string) float64 {
	p.t.Helper()
	resp, err := http.Get(p.url("/metrics"))
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				p.t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	p.t.Fatalf("metric %s not in /metrics", name)
	return 0
}
