package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// privateClickHouse is a clickhouse-server of the test's own, on its own ports and data
// directory, so a test can stop and start it without touching the server other tests
// share.
type privateClickHouse struct {
	t    *testing.T
	dir  string
	port int
	cmd  *exec.Cmd
	done chan error
}

func startPrivateClickHouse(t *testing.T) *privateClickHouse {
	t.Helper()
	src, err := os.ReadFile("/etc/clickhouse-server/config.xml")
	if err != nil {
		t.Fatalf("clickhouse-server is required (install it with .ci/services): %v", err)
	}
	dir, err := os.MkdirTemp("", "rung-clickhouse-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	port := freePort(t)
	cfg := string(src)
	for _, r := range []struct{ re, to string }{
		{`<http_port>\d+</http_port>`, fmt.Sprintf("<http_port>%d</http_port>", freePort(t))},
		{`<tcp_port>\d+</tcp_port>`, fmt.Sprintf("<tcp_port>%d</tcp_port>", port)},
		{`<interserver_http_port>\d+</interserver_http_port>`, fmt.Sprintf("<interserver_http_port>%d</interserver_http_port>", freePort(t))},
		{`<listen_host>::1</listen_host>`, ""},
		{`/var/lib/clickhouse/`, dir + "/data/"},
		{`/var/log/clickhouse-server/`, dir + "/log/"},
	} {
		cfg = regexp.MustCompile(r.re).ReplaceAllString(cfg, r.to)
	}
	for _, sub := range []string{"data", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	users, err := os.ReadFile("/etc/clickhouse-server/users.xml")
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"config.xml": []byte(cfg), "users.xml": users} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// clickhouse-server refuses to run as root: it runs as the clickhouse user.
	if out, err := exec.Command("chown", "-R", "clickhouse:clickhouse", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v %s", dir, err, out)
	}
	c := &privateClickHouse{t: t, dir: dir, port: port}
	c.start()
	t.Cleanup(c.stop)
	return c
}

func (c *privateClickHouse) dsn(db string) string {
	return fmt.Sprintf("clickhouse://127.0.0.1:%d/%s", c.port, db)
}

func (c *privateClickHouse) start() {
	c.t.Helper()
	c.cmd = exec.Command("setpriv", "--reuid=clickhouse", "--regid=clickhouse", "--init-groups",
		"clickhouse-server", "--config="+filepath.Join(c.dir, "config.xml"))
	c.cmd.Dir = c.dir
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start clickhouse-server: %v", err)
	}
	c.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(c.cmd, c.done)
	checkFor(c.t, 60*time.Second, 50*time.Millisecond, func() error {
		conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(c.port))
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// stop terminates the server and waits until it has exited.
func (c *privateClickHouse) stop() {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

func freePort(t testing.TB) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}
