package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rungBin is the rung binary built once for the tests that run it as a process, the
// way a user does: flags, signals, exit codes.
var rungBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rung-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rungBin = filepath.Join(dir, "rung")
	if out, err := exec.Command("go", "build", "-o", rungBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build rung: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running `rung serve` or `rung aggregate`.
type proc struct {
	t      *testing.T
	sub    string // the subcommand
	cmd    *exec.Cmd
	addr   string
	stderr *syncBuffer
	done   chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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
	p := &proc{t: t, sub: sub, addr: freeAddr(t), stderr: &syncBuffer{}, done: make(chan error, 1)}
	// A data directory of its own unless args name one (the last flag wins): serve locks
	// its directory, and the default one is shared by every test.
	p.cmd = exec.Command(rungBin, append([]string{sub, "--listen", p.addr, "--data-dir", t.TempDir()}, args...)...)
	p.cmd.Stderr = p.stderr
	p.cmd.Env = append(os.Environ(), "RUNG_LOG_LEVEL=info")
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
	checkFor(t, 30*time.Second, 20*time.Millisecond, func() error {
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

func checkFor(t testing.TB, total, step time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", total, err)
		}
		time.Sleep(step)
	}
}
