package main

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDataDirLock: a second `rung serve` process on a data directory in use refuses at
// once, naming the directory and the holder's pid, and the first keeps serving; once the
// first is gone (killed: no clean-up ran), the directory can be served again.
func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	first := startServe(t, "--data-dir", dir)

	second := exec.Command(rungBin, "serve", "--data-dir", dir, "--listen", freeAddr(t))
	out, err := runFor(t, second, 30*time.Second)
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("a second serve on %s: %v, want a non-zero exit\n%s", dir, err, out)
	}
	for _, want := range []string{dir, fmt.Sprintf("pid %d", first.cmd.Process.Pid)} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not name %q:\n%s", want, out)
		}
	}
	if resp, err := http.Get(first.url("/healthz")); err != nil {
		t.Errorf("the first serve after the refusal: %v", err)
	} else {
		resp.Body.Close()
	}

	first.kill()
	startServe(t, "--data-dir", dir) // starts: the kernel released the lock with the process
}

// runFor runs cmd to its end, at most total, and returns its combined output.
func runFor(t *testing.T, cmd *exec.Cmd, total time.Duration) (string, error) {
	t.Helper()
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(total):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v still running after %v:\n%s", cmd.Args, total, out.String())
		return "", nil
	}
}
