package bench

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
)

// serve starts `rung serve` on SQLite in a fresh data directory; it is stopped with
// SIGTERM at the end of the test, and must then exit cleanly.
func serve(t *testing.T, args ...string) (base, dataDir string) {
	t.Helper()
	bin := harness.RungBinary(t)
	addr, dataDir := harness.FreeAddr(t), t.TempDir()
	cmd := exec.Command(bin, append([]string{"serve", "--listen", addr, "--data-dir", dataDir,
		"--flush-interval", "100ms", "--log-level", "warn"}, args...)...)
	stderr := &harness.Output{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("rung serve exited with %v after SIGTERM", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("rung serve still running 30 s after SIGTERM")
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("rung serve stderr:\n%s", stderr.String())
		}
	})
	base = "http://" + addr
	harness.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("rung serve exited: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return base, dataDir
}

// TestEndToEnd runs the load generator against a real `rung serve` on SQLite, single
// signals and batches, and checks id by id that what landed is what was accepted.
func TestEndToEnd(t *testing.T) {
	base, dataDir := serve(t)
	store, err := OpenStore(context.Background(), "", "", filepath.Join(dataDir, "telemetry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, c := range []struct {
		name  string
		cfg   Config
		check func(t *testing.T, res *Result)
	}{
		{"closed loop, single signals", Config{Connections: 8, Batch: 1, Count: 1500}, func(t *testing.T, res *Result) {
			if res.Requests != 1500 {
				t.Errorf("sent %d timed requests, want the count 1500", res.Requests)
			}
		}},
		{"open loop, batches of 20", Config{Connections: 4, Batch: 20, Rate: 100, Ramp: 200 * time.Millisecond, Duration: 1200 * time.Millisecond}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.Target = base
			cfg.Model = DefaultModel(5, "e2e"+strings.ToLower(fmt.Sprintf("%x", time.Now().UnixNano()%0xffffff)))
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Accepted == 0 || res.Rejected != 0 || res.Unknown != 0 || res.Unfinished != 0 {
				t.Fatalf("accepted %d, rejected %d (%v), unknown %d (%v), unfinished %d", res.Accepted, res.Rejected, res.Reasons,
					res.Unknown, res.Errors, res.Unfinished)
			}
			if res.Accepted != res.Signals+res.FinishSignals {
				t.Errorf("accepted %d of %d signals sent", res.Accepted, res.Signals+res.FinishSignals)
			}
			v := Verify(context.Background(), res, VerifyOptions{Store: store, StatsURL: base, Wait: 30 * time.Second})
			l := v.Landed
			if l.Status != StatusOK || l.Matched != res.Accepted || l.Stored != res.Accepted {
				t.Errorf("landed check %s: %+v; accepted %d", l.Status, l, res.Accepted)
			}
			// The stats API's numbers agree with the truth, exactly, and with the model.
			if s := v.Stats; s.Status != StatusOK || len(s.Experiment) != 2 || len(s.Landing) == 0 || s.Experiment[0].Visitors == 0 {
				t.Errorf("stats check %s: %s %v\n%+v", s.Status, s.Note, s.Problems, s)
			}
			if c.check != nil {
				c.check(t, res)
			}
			var text bytes.Buffer
			if err := NewReport(res, v).WriteText(&text); err != nil || !strings.Contains(text.String(), "landed == accepted, by event_id: ok") {
				t.Errorf("report (%v):\n%s", err, text.String())
			}
		})
	}
}

// TestLandedCheckFindsLoss: the landed check is not a rubber stamp. Signals deleted from
// the sink behind rung's back are reported missing, by id.
func TestLandedCheckFindsLoss(t *testing.T) {
	base, dataDir := serve(t)
	store, err := OpenStore(context.Background(), "", "", filepath.Join(dataDir, "telemetry.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	m := DefaultModel(9, "loss0001")
	res, err := Run(context.Background(), Config{Target: base, Connections: 2, Count: 200, Model: m})
	if err != nil {
		t.Fatal(err)
	}
	harness.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		n, err := store.Count(context.Background(), m.Site)
		if err == nil && n != res.Accepted {
			err = fmt.Errorf("%d of %d stored", n, res.Accepted)
		}
		return err
	})
	gone := m.EventID(3, 0)
	w, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "telemetry.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Exec("DELETE FROM signals WHERE event_id = ?", gone); err != nil {
		t.Fatal(err)
	}
	v := Verify(context.Background(), res, VerifyOptions{Store: store, Wait: 500 * time.Millisecond})
	if v.Landed.Status != StatusFailed || v.Landed.Missing != 1 || len(v.Landed.MissingIDs) != 1 || v.Landed.MissingIDs[0] != gone {
		t.Errorf("after deleting %s: %+v", gone, v.Landed)
	}
}

// TestCommand runs `rung bench` as a user would, with --json and --html.
func TestCommand(t *testing.T) {
	base, dataDir := serve(t)
	html := filepath.Join(t.TempDir(), "report.html")
	cmd := exec.Command(harness.RungBinary(t), "bench", "--target", base, "--count", "300", "--connections", "4",
		"--data-dir", dataDir, "--json", "--html", html, "--quiet")
	cmd.Env = append(os.Environ(), "RUNG_BATCH=5", "RUNG_SEED=11")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("rung bench: %v\n%s", err, stderr.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout.String())
	}
	if rep.Batch != 5 || rep.Seed != 11 || rep.Requests.Sent != 300 || rep.Verification == nil ||
		rep.Verification.Landed.Status != StatusOK || rep.Signals.Accepted == 0 || len(rep.Series) == 0 && rep.ElapsedS > 1 {
		t.Errorf("report: batch %d seed %d sent %d verification %+v", rep.Batch, rep.Seed, rep.Requests.Sent, rep.Verification)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "Latency over time", "Throughput over time", "landed == accepted"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("the HTML report lacks %q", want)
		}
	}
	if bytes.Contains(page, []byte("<script")) || bytes.Contains(page, []byte("http://cdn")) {
		t.Error("the HTML report is not self-contained")
	}

	// A remote target is refused, and nothing is sent.
	out, err := exec.Command(harness.RungBinary(t), "bench", "--target", "http://10.255.255.1:8080", "--duration", "1s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a loopback address") {
		t.Errorf("remote target: %v\n%s", err, out)
	}
}
