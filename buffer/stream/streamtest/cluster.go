// Package streamtest starts real nats-server clusters for tests of rung's cluster mode:
// the stream package's own tests and those of cmd/rung.
package streamtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/internal/testport"
)

// Server is the nats-server binary the clusters run (Debian's).
const Server = "/usr/sbin/nats-server"

// StartCluster starts n nats-server processes with JetStream, routed into one cluster
// named "rung", each storing in a directory of t.TempDir(), and waits until JetStream
// answers. It returns the client URLs and kill, which SIGKILLs server i and waits for it
// to exit. The servers are stopped when the test ends; if it failed, their logs' tails
// are printed.
func StartCluster(t testing.TB, n int) (urls []string, kill func(i int)) {
	t.Helper()
	if _, err := os.Stat(Server); err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	clientPorts, routePorts := freePorts(t, n), freePorts(t, n)
	dir := t.TempDir()
	procs := make([]*exec.Cmd, n)
	logs := make([]string, n)
	for i := range n {
		var routes []string
		for j, p := range routePorts {
			if j != i {
				routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
			}
		}
		sd := filepath.Join(dir, fmt.Sprintf("n%d", i))
		logs[i] = filepath.Join(dir, fmt.Sprintf("n%d.log", i))
		cmd := exec.Command(Server,
			"-a", "127.0.0.1", "-p", fmt.Sprint(clientPorts[i]), "-n", fmt.Sprintf("rung-n%d", i),
			"-js", "-sd", sd,
			"--cluster_name", "rung", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]),
			"--routes", strings.Join(routes, ","),
			"-l", logs[i])
		if err := cmd.Start(); err != nil {
			t.Fatalf("start nats-server %d: %v", i, err)
		}
		procs[i] = cmd
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	kill = func(i int) {
		if procs[i] == nil {
			return
		}
		procs[i].Process.Signal(syscall.SIGKILL)
		procs[i].Wait()
		procs[i] = nil
	}
	t.Cleanup(func() {
		for i := range procs {
			kill(i)
		}
		if t.Failed() {
			for i, l := range logs {
				b, _ := os.ReadFile(l)
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("nats-server %d log tail:\n%s", i, bytes.TrimSpace(b))
			}
		}
	})
	if err := waitJetStream(urls, 30*time.Second); err != nil {
		t.Fatalf("nats cluster of %d: %v", n, err)
	}
	if err := waitPlacement(urls[0], n, 30*time.Second); err != nil {
		t.Fatalf("nats cluster of %d: %v", n, err)
	}
	return urls, kill
}

// waitJetStream waits until every server answers a JetStream request, which needs the
// cluster's meta leader.
func waitJetStream(urls []string, total time.Duration) error {
	deadline := time.Now().Add(total)
	for _, u := range urls {
		for {
			err := jetStreamUp(u)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %w", u, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// waitPlacement waits until the cluster can place a stream on all n nodes: its meta
// leader answers before it has heard from every peer, and a test that makes an R3 stream
// in that moment would be told "no suitable peers for placement".
func waitPlacement(url string, n int, total time.Duration) error {
	nc, js, err := connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	deadline := time.Now().Add(total)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = js.CreateStream(ctx, jetstream.StreamConfig{
			Name: "STREAMTEST_PROBE", Subjects: []string{"streamtest.probe"},
			Replicas: n, Storage: jetstream.MemoryStorage,
		})
		if err == nil {
			err = js.DeleteStream(ctx, "STREAMTEST_PROBE")
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("place a stream on %d nodes: %w", n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func jetStreamUp(url string) error {
	nc, js, err := connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

func connect(url string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// freePorts returns n TCP ports free on 127.0.0.1 a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// Single is one nats-server with JetStream that a test can stop and start again, on
// the same port and store: a NATS outage.
type Single struct {
	URL  string
	t    testing.TB
	args []string
	log  string
	cmd  *exec.Cmd
}

// StartServer starts one nats-server with JetStream, storing in a directory of
// t.TempDir(), and waits until JetStream answers. It is stopped when the test ends; if
// the test failed, its log's tail is printed.
func StartServer(t testing.TB) *Single {
	t.Helper()
	if _, err := os.Stat(Server); err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	dir := t.TempDir()
	// Below the ephemeral range: a client's connection must not take the port while
	// the server is down.
	port := testport.Stable(t)
	s := &Single{t: t, URL: fmt.Sprintf("nats://127.0.0.1:%d", port), log: filepath.Join(dir, "nats.log"),
		args: []string{"-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", filepath.Join(dir, "store"), "-l", filepath.Join(dir, "nats.log")}}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(s.log)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("nats-server log tail:\n%s", bytes.TrimSpace(b))
		}
	})
	s.Start()
	return s
}

// Start starts the server again after Kill, and waits until JetStream answers.
func (s *Single) Start() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	s.cmd = exec.Command(Server, s.args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	if err := waitJetStream([]string{s.URL}, 30*time.Second); err != nil {
		s.t.Fatalf("nats-server: %v", err)
	}
}

// Kill SIGKILLs the server and waits for it to exit.
func (s *Single) Kill() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	s.cmd = nil
}
