package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
)

// TestPublicListenerFailureStopsServe: with --admin-listen, the public listener failing
// under the server stops the whole process, with an error, within the drain timeout;
// the admin listener's /readyz stops saying ready. (It used to wait on the admin server
// for ever, ready all along.)
func TestPublicListenerFailureStopsServe(t *testing.T) {
	public, admin := harness.FreeAddr(t), harness.FreeAddr(t)
	var cfg serveConfig
	args := []string{"--data-dir", t.TempDir(), "--listen", public, "--admin-listen", admin, "--drain-timeout", "5s"}
	if _, err := configure("rung serve", &cfg, &cfg.DryRun, args, func(string) (string, bool) { return "", false }, io.Discard); err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		lns = map[string]net.Listener{}
	)
	listen := func(addr string) (net.Listener, error) {
		ln, err := listenTCP(addr)
		mu.Lock()
		lns[addr] = ln
		mu.Unlock()
		return ln, err
	}
	var logs harness.Output
	done := make(chan error, 1)
	go func() { done <- serve(context.Background(), &cfg, slog.New(slog.NewTextHandler(&logs, nil)), listen) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve's log:\n%s", logs.String())
		}
	})
	readyz := "http://" + admin + "/readyz"
	harness.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		select {
		case err := <-done:
			t.Fatalf("serve ended early: %v", err)
		default:
		}
		resp, err := http.Get(readyz)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz %d", resp.StatusCode)
		}
		return nil
	})

	mu.Lock()
	lns[public].Close() // the fault: the public listener fails under the server
	mu.Unlock()
	// The bound: the drain timeout, plus each listener's 5 s grace for requests in
	// progress (there are none), plus slack for a loaded machine.
	bound := cfg.DrainTimeout + 2*5*time.Second + 20*time.Second
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "public listener") {
			t.Fatalf("serve returned %v, want the public listener's failure", err)
		}
	case <-time.After(bound):
		t.Fatalf("serve still running %v after its public listener failed", bound)
	}
	if resp, err := http.Get(readyz); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the admin listener's /readyz still says ready after serve returned")
		}
	}
}

// TestShutdownThatDropsExitsNonZero: signals the sink refuses while the buffer drains
// at SIGTERM are lost, so the process says so with its exit status, not only in a log
// line.
func TestShutdownThatDropsExitsNonZero(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, "--data-dir", dir, "--flush-interval", "1h", "--batch-size", "100000")
	l := harness.NewLedger()
	accepted := postAll(t, l, generate(5, 50), 3, p)
	if len(accepted) == 0 {
		t.Fatal("nothing accepted")
	}
	// Behind rung's back, the table the flush writes to goes: the drain's flush fails
	// for good.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "telemetry.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec("DROP TABLE signals")
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := p.terminate(); !errors.As(err, &exit) {
		t.Fatalf("rung serve exited with %v after a shutdown that dropped %d signals, want a non-zero status", err, len(accepted))
	}
	if !strings.Contains(p.stderr.String(), "dropped while stopping") {
		t.Errorf("stderr does not say what was dropped:\n%s", p.stderr.String())
	}
	// The table is gone: nothing is stored, and every accepted signal is counted.
	l.Check(t, harness.Outcome{Stored: map[string]int{}, Dropped: p.stopDrops()})
}
