// Package chtest starts clickhouse-server processes of a test's own: on their own ports
// and data directories, so a test can stop and start one (an outage) or run several as
// the shards of a cluster without touching the server other tests share. They run
// Debian's clickhouse-server with its packaged configuration, as the clickhouse user
// (it refuses to run as root).
package chtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/testport"
)

// Server is a running clickhouse-server of the test's own.
type Server struct {
	Port int // native protocol, on 127.0.0.1

	t    testing.TB
	dir  string
	cmd  *exec.Cmd
	done chan error
}

// Start starts one server and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartServers(t, 1, nil)[0]
}

// StartServers starts n servers and stops them when the test ends. remoteServers, when
// not nil, renders the body of <remote_servers> (the clusters) from the servers, whose
// ports are known by then; every server gets the same clusters, and the users.d files
// of the repository's cluster (examples/cluster/users.d).
func StartServers(t testing.TB, n int, remoteServers func(s []*Server) string) []*Server {
	t.Helper()
	src, err := os.ReadFile("/etc/clickhouse-server/config.xml")
	if err != nil {
		t.Fatalf("clickhouse-server is required (install it with .ci/services): %v", err)
	}
	users, err := os.ReadFile("/etc/clickhouse-server/users.xml")
	if err != nil {
		t.Fatalf("clickhouse-server is required (install it with .ci/services): %v", err)
	}
	s := make([]*Server, n)
	for i := range s {
		dir, err := os.MkdirTemp("", "rung-clickhouse-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		s[i] = &Server{t: t, dir: dir, Port: testport.Stable(t)}
	}
	clusters := ""
	var usersD map[string][]byte
	if remoteServers != nil {
		clusters = "<remote_servers>" + remoteServers(s) + "</remote_servers>"
		// The cluster's nodes get the profile docker-compose.cluster.yml ships, so the
		// tests that run on them prove that file works.
		usersD = clusterProfile(t)
	}
	for _, x := range s {
		cfg := string(src)
		for _, r := range []struct{ re, to string }{
			{`(?s)<remote_servers.*</remote_servers>`, clusters},
			{`<http_port>\d+</http_port>`, fmt.Sprintf("<http_port>%d</http_port>", testport.Stable(t))},
			{`<tcp_port>\d+</tcp_port>`, fmt.Sprintf("<tcp_port>%d</tcp_port>", x.Port)},
			{`<interserver_http_port>\d+</interserver_http_port>`, fmt.Sprintf("<interserver_http_port>%d</interserver_http_port>", testport.Stable(t))},
			{`<listen_host>::1</listen_host>`, ""},
			{`/var/lib/clickhouse/`, x.dir + "/data/"},
			{`/var/log/clickhouse-server/`, x.dir + "/log/"},
		} {
			cfg = regexp.MustCompile(r.re).ReplaceAllLiteralString(cfg, r.to)
		}
		for _, sub := range []string{"data", "log", "users.d"} {
			if err := os.MkdirAll(filepath.Join(x.dir, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		files := map[string][]byte{"config.xml": []byte(cfg), "users.xml": users}
		for name, b := range usersD {
			files[filepath.Join("users.d", name)] = b
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(x.dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command("chown", "-R", "clickhouse:clickhouse", x.dir).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v %s", x.dir, err, out)
		}
		x.launch()
	}
	t.Cleanup(func() { stopAll(s) })
	for _, x := range s {
		x.wait()
	}
	return s
}

// clusterProfileDir is where the repository keeps the users.d files of its ClickHouse
// cluster (docker-compose.cluster.yml mounts them).
const clusterProfileDir = "examples/cluster/users.d"

// clusterProfile reads the files of clusterProfileDir, found from the test's directory up
// to the module's root.
func clusterProfile(t testing.TB) map[string][]byte {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatalf("no go.mod above the test's directory, so no %s", clusterProfileDir)
		}
		dir = up
	}
	paths, err := filepath.Glob(filepath.Join(dir, clusterProfileDir, "*.xml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("the cluster's ClickHouse profile: no %s/*.xml in %s (%v)", clusterProfileDir, dir, err)
	}
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = b
	}
	return files
}

// Cluster renders a cluster for remoteServers: one shard per server, no replicas.
func Cluster(name string, shards ...*Server) string {
	var b strings.Builder
	b.WriteString("<" + name + ">")
	for _, x := range shards {
		b.WriteString("<shard>" + x.Replica() + "</shard>")
	}
	b.WriteString("</" + name + ">")
	return b.String()
}

// Replica renders the server as a <replica> of a shard.
func (x *Server) Replica() string {
	return fmt.Sprintf("<replica><host>127.0.0.1</host><port>%d</port></replica>", x.Port)
}

// Addr is the server's native-protocol address.
func (x *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(x.Port) }

// DSN is rung's --clickhouse for database db on the server.
func (x *Server) DSN(db string) string { return "clickhouse://" + x.Addr() + "/" + db }

// Start starts the server again after Stop, on the same port and data, and waits until
// it accepts connections.
func (x *Server) Start() {
	x.t.Helper()
	x.launch()
	x.wait()
}

func (x *Server) launch() {
	x.t.Helper()
	x.cmd = exec.Command("setpriv", "--reuid=clickhouse", "--regid=clickhouse", "--init-groups",
		"clickhouse-server", "--config="+filepath.Join(x.dir, "config.xml"))
	x.cmd.Dir = x.dir
	if err := x.cmd.Start(); err != nil {
		x.t.Fatalf("start clickhouse-server: %v", err)
	}
	x.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(x.cmd, x.done)
}

// wait returns once the server accepts connections on its native port.
func (x *Server) wait() {
	x.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		conn, err := net.Dial("tcp", x.Addr())
		if err == nil {
			conn.Close()
			return
		}
		select {
		case err := <-x.done:
			x.done <- err
			log, _ := os.ReadFile(filepath.Join(x.dir, "log", "clickhouse-server.err.log"))
			x.t.Fatalf("clickhouse-server on port %d exited: %v\n%s", x.Port, err, log)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			x.t.Fatalf("clickhouse-server on port %d did not answer within 60s: %v", x.Port, err)
		}
	}
}

// Stop terminates the server and waits until it has exited.
func (x *Server) Stop() { stopAll([]*Server{x}) }

// Kill ends the server at once, as a crash would.
func (x *Server) Kill() {
	if x.cmd == nil || x.cmd.Process == nil {
		return
	}
	x.cmd.Process.Kill()
	<-x.done
	x.cmd = nil
}

// Running says whether the server was started and has not been stopped.
func (x *Server) Running() bool { return x.cmd != nil }

// stopAll terminates the servers together, since a server on its way out waits for the
// connections the others hold to it, and waits until they have exited.
func stopAll(s []*Server) {
	for _, x := range s {
		if x.cmd != nil && x.cmd.Process != nil {
			x.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, x := range s {
		if x.cmd == nil || x.cmd.Process == nil {
			continue
		}
		select {
		case <-x.done:
		case <-time.After(30 * time.Second):
			x.cmd.Process.Kill()
			<-x.done
		}
		x.cmd = nil
	}
}
