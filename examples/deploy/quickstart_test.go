package deploy

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// command is one shell command of a README block, continuation lines joined, with the
// output the README claims for it (the "# " lines after it).
type command struct {
	line    string
	claimed []string
}

// quickStart returns the README's Quick start section and its marked blocks: each
// fenced block right after a <!-- quickstart:NAME --> line.
func quickStart(t *testing.T) (string, map[string][]command) {
	t.Helper()
	readme := readFile(t, "README.md")
	start := strings.Index(readme, "\n## Quick start\n")
	if start < 0 {
		t.Fatal("README.md has no ## Quick start")
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	blocks := map[string][]command{}
	re := regexp.MustCompile("(?s)<!-- quickstart:([a-z]+) -->\n```sh\n(.*?)```")
	for _, m := range re.FindAllStringSubmatch(section, -1) {
		var cmds []command
		for _, line := range strings.Split(strings.ReplaceAll(m[2], "\\\n", " "), "\n") {
			switch {
			case strings.TrimSpace(line) == "":
			case strings.HasPrefix(line, "# "):
				if len(cmds) == 0 {
					t.Fatalf("quickstart:%s: a claimed output before any command", m[1])
				}
				cmds[len(cmds)-1].claimed = append(cmds[len(cmds)-1].claimed, strings.TrimPrefix(line, "# "))
			default:
				cmds = append(cmds, command{line: line})
			}
		}
		blocks[m[1]] = cmds
	}
	for _, name := range []string{"serve", "test", "signal", "counted"} {
		if len(blocks[name]) == 0 {
			t.Fatalf("README.md's Quick start has no quickstart:%s block with a command", name)
		}
	}
	return section, blocks
}

// The quick start is two commands after cloning, serve and the test suite, with no
// environment to set first; the test command is what CI runs.
func TestQuickStartShape(t *testing.T) {
	section, blocks := quickStart(t)
	if len(blocks["serve"]) != 1 || !strings.Contains(blocks["serve"][0].line, "rung serve") {
		t.Errorf("quickstart:serve is %q: want one command running rung serve", blocks["serve"])
	}
	if len(blocks["test"]) != 1 || strings.Fields(blocks["test"][0].line)[0] != "make" {
		t.Errorf("quickstart:test is %q: want one make command", blocks["test"])
	}
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		if strings.Contains(block[1], "export ") || strings.Contains(block[1], "GOTOOLCHAIN") {
			t.Errorf("the Quick start sets the environment first:\n%s", block[1])
		}
	}
	ci := readFile(t, ".ci/run")
	lines := strings.Split(strings.TrimSpace(ci), "\n")
	test := strings.TrimSpace(strings.SplitN(blocks["test"][0].line, "#", 2)[0])
	if last := strings.TrimSpace(lines[len(lines)-1]); last != test {
		t.Errorf(".ci/run ends with %q, the README's test command is %q", last, test)
	}
	for _, want := range []string{"go build -o rung ./cmd/rung", "go install ./cmd/rung"} {
		if !strings.Contains(section, want) {
			t.Errorf("the Quick start does not say %q", want)
		}
	}
}

// TestQuickStart runs the README's quick start verbatim in a fresh copy of the
// repository: rung serve on the embedded defaults, the curl signal (a bot, stored:
// tail shows it, left out of the numbers), then the one with a browser's User-Agent
// (counted). The only change: the address, 127.0.0.1:8080 in the README, is a free
// port, since other tests and processes on this machine may hold 8080.
func TestQuickStart(t *testing.T) {
	_, blocks := quickStart(t)
	if len(blocks["signal"]) != 2 || len(blocks["counted"]) != 2 {
		t.Fatalf("quickstart:signal %q and quickstart:counted %q: want a post and a look at what it did in each",
			blocks["signal"], blocks["counted"])
	}
	dir := copyRepo(t)
	addr := freeAddr(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serveOut bytes.Buffer
	serve := shell(ctx, dir, blocks["serve"][0].line)
	serve.Env = append(serve.Env, "RUNG_LISTEN="+addr)
	serve.Stdout, serve.Stderr = &serveOut, &serveOut
	serve.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // go run's child goes with it
	if err := serve.Start(); err != nil {
		t.Fatalf("%s: %v", blocks["serve"][0].line, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() {
		syscall.Kill(-serve.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			syscall.Kill(-serve.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("rung serve:\n%s", serveOut.String())
		}
	}()
	waitReady(t, addr, exited, &serveOut)

	local := func(c command) command {
		c.line = strings.ReplaceAll(c.line, "localhost:8080", addr)
		return c
	}
	post, tail := local(blocks["signal"][0]), local(blocks["signal"][1])
	postCounted, query := local(blocks["counted"][0]), local(blocks["counted"][1])
	runClaimed(t, dir, post)
	eventually(t, dir, tail, func(out string) bool {
		return strings.Contains(out, "visitor-0001") && strings.Contains(out, "/pricing")
	}, "the curl signal (visitor-0001, /pricing)")
	// The bot is stored and flushed (tail showed it): the numbers leave it out.
	if out := runShell(t, dir, query.line); strings.Contains(out, "/pricing") {
		t.Errorf("%s after the curl (bot) signal only counts it:\n%s", query.line, out)
	}
	runClaimed(t, dir, postCounted)
	eventually(t, dir, query, func(out string) bool {
		return regexp.MustCompile(`/pricing\s+1\b`).MatchString(out)
	}, "/pricing with 1 session")
}

// shell is `sh -c line` in dir, with the test's environment but none of rung's RUNG_*
// settings.
func shell(ctx context.Context, dir, line string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "sh", "-c", line)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RUNG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	return cmd
}

func runShell(t *testing.T, dir, line string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := shell(ctx, dir, line).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s: %v\n%s%s", line, err, out, stderr)
	}
	return string(out)
}

// runClaimed runs c and compares its output with what the README claims.
func runClaimed(t *testing.T, dir string, c command) {
	t.Helper()
	if len(c.claimed) == 0 {
		t.Fatalf("%s: the README claims no output for it", c.line)
	}
	if got, want := strings.TrimSpace(runShell(t, dir, c.line)), strings.Join(c.claimed, "\n"); got != want {
		t.Errorf("%s\nprinted %s\nthe README says %s", c.line, got, want)
	}
}

// eventually runs c until its output satisfies ok: what the README shows after a
// one-second sleep, allowed more time on a loaded machine.
func eventually(t *testing.T, dir string, c command, ok func(string) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out := runShell(t, dir, c.line)
		if ok(out) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed %s; last:\n%s", c.line, what, out)
		}
	}
}

func waitReady(t *testing.T, addr string, exited chan error, out *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute) // go run compiles rung in the copy first
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("rung serve exited: %v\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("rung serve not ready on %s within 5 minutes: %v", addr, err)
		}
	}
}

// copyRepo copies the repository's files (tracked, and untracked but not ignored: what
// a clone of this tree holds) to a fresh directory.
func copyRepo(t *testing.T) string {
	t.Helper()
	ls := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	ls.Dir = root
	out, err := ls.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dir := t.TempDir()
	n := 0
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" {
			continue
		}
		src := filepath.Join(root, f)
		info, err := os.Lstat(src)
		if os.IsNotExist(err) { // deleted, not yet committed
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("copied %d files and no go.mod: %v", n, err)
	}
	return dir
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprintf("127.0.0.1:%d", ln.Addr().(*net.TCPAddr).Port)
}
