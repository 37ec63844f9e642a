package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/cli")

// cliCase is one command line and the exit code it must end with; what it prints is in
// testdata/cli/<name>.txt.
type cliCase struct {
	name string
	args []string
	env  map[string]string
	code int
}

func cliCases() []cliCase {
	cases := []cliCase{
		{name: "no-command", args: nil, code: 2},
		{name: "help", args: []string{"--help"}},
		{name: "help-command", args: []string{"help"}},
		{name: "help-serve", args: []string{"help", "serve"}},
		{name: "help-query-experiment", args: []string{"help", "query", "experiment"}},
		{name: "help-unknown", args: []string{"help", "nope"}, code: 2},
		{name: "version-stray-after-flag", args: []string{"--version", "now"}, code: 2},
		{name: "unknown-command", args: []string{"nope"}, code: 2},

		{name: "serve-bad-values", args: []string{"serve", "--when-full", "maybe", "--batch-size", "0", "--dry-run"}, code: 2},
		{name: "serve-unknown-flag", args: []string{"serve", "--nope"}, code: 2},
		{name: "serve-bad-duration", args: []string{"serve", "--drain-timeout", "30"}, code: 2},
		{name: "serve-bad-bool", args: []string{"serve", "--relay=maybe"}, code: 2},
		{name: "serve-missing-value", args: []string{"serve", "--listen"}, code: 2},
		{name: "serve-stray-argument", args: []string{"serve", "extra"}, code: 2},
		{name: "serve-bad-env", args: []string{"serve", "--dry-run"}, env: map[string]string{"RUNG_BATCH_SIZE": "many", "RUNG_FLUSH_INTERVAL": "1"}, code: 2},
		{name: "serve-dry-run", args: []string{"serve", "--dry-run", "--nats", "nats://127.0.0.1:4222"}, env: map[string]string{"RUNG_API_TOKEN": "secret"}},
		{name: "aggregate-needs-nats", args: []string{"aggregate", "--dry-run"}, code: 2},
		{name: "aggregate-dry-run", args: []string{"aggregate", "--dry-run", "--nats", "nats://127.0.0.1:4222", "--partitions", "0-7"}},
		{name: "relay-bad-batch", args: []string{"relay", "--batch", "x"}, code: 2},
		{name: "relay-bad-env", args: []string{"relay", "--dry-run"}, env: map[string]string{"RUNG_RELAY_BATCH": "x"}, code: 2},
		{name: "relay-dry-run", args: []string{"relay", "--dry-run", "--postgres", "postgres://rung:hunter2@db/rung"}, env: map[string]string{"RUNG_RELAY_BATCH": "50"}},
		{name: "bench-bad-duration", args: []string{"bench", "--duration", "2"}, code: 2},
		{name: "bench-bad-values", args: []string{"bench", "--rate", "10", "--signal-rate", "10", "--variants", "x", "--dry-run"}, code: 2},
		{name: "bench-dry-run", args: []string{"bench", "--dry-run", "--run", "golden1"}},
		{name: "tail-bad-n", args: []string{"tail", "-n", "0"}, code: 2},
		{name: "query-nothing", args: []string{"query"}, code: 2},
		{name: "query-unknown", args: []string{"query", "funnels"}, code: 2},
		{name: "query-experiment-no-id", args: []string{"query", "experiment", "--site", "a.example"}, code: 2},
		{name: "query-bad-from", args: []string{"query", "landing-pages", "--from", "yesterday"}, code: 2},
		{name: "query-no-store", args: []string{"query", "landing-pages", "--data-dir", "/nonexistent/rung"}, code: 1},
		{name: "reconcile-bad-goals", args: []string{"reconcile", "--goals", ","}, code: 2},
		{name: "baseline-stray-argument", args: []string{"baseline", "now"}, code: 2},
		{name: "version-stray-argument", args: []string{"version", "--short"}, code: 2},
	}
	// Every command's help, and every query's.
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range commands() {
			if !yield(n) {
				return
			}
		}
		for n := range queries() {
			if !yield("query " + n) {
				return
			}
		}
	}) {
		args := append(strings.Fields(name), "--help")
		cases = append(cases, cliCase{name: "help-" + strings.ReplaceAll(name, " ", "-") + "-flag", args: args})
	}
	return cases
}

// TestCLI runs each command line in process, through cli (what main exits with), and
// again as the built binary, and compares what each printed and its exit code with the
// golden file. go test ./cmd/rung -run TestCLI -update rewrites the files.
func TestCLI(t *testing.T) {
	for _, tc := range cliCases() {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := cli(context.Background(), tc.args, envMap(tc.env), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstderr:\n%s", code, tc.code, stderr.String())
			}
			got := transcript(tc.args, code, stdout.String(), stderr.String())
			path := filepath.Join("testdata", "cli", tc.name+".txt")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				t.Errorf("in process, differs from %s:\n--- got\n%s\n--- want\n%s", path, got, want)
			}

			cmd := exec.Command(rungBin, tc.args...)
			cmd.Dir = t.TempDir()
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			for k, v := range tc.env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			var bout, berr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &bout, &berr
			err = cmd.Run()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatal(err)
			}
			if b := transcript(tc.args, cmd.ProcessState.ExitCode(), bout.String(), berr.String()); b != string(want) {
				t.Errorf("the binary differs from %s:\n--- got\n%s\n--- want\n%s", path, b, want)
			}
		})
	}
}

func transcript(args []string, code int, stdout, stderr string) string {
	return fmt.Sprintf("$ rung %s\nexit %d\n-- stdout --\n%s-- stderr --\n%s", strings.Join(args, " "), code, stdout, stderr)
}

// TestHelpOwnFlags: a command's help lists the flags it reads and no other, above all
// not the collector's flags in a command that collects nothing.
func TestHelpOwnFlags(t *testing.T) {
	for cmd, absent := range map[string][]string{
		"aggregate": {"--publish-", "/collect", "--listen string\n        address for HTTP", "--when-full", "--api-token"},
		"reconcile": {"ignored"},
		"relay":     {"--partitions", "--publish-"},
		"migrate":   {"--batch-size", "--listen"},
	} {
		var stdout, stderr bytes.Buffer
		if code := cli(context.Background(), []string{"help", cmd}, envMap(nil), &stdout, &stderr); code != 0 {
			t.Fatalf("rung help %s: exit %d: %s", cmd, code, stderr.String())
		}
		for _, s := range absent {
			if strings.Contains(stdout.String(), s) {
				t.Errorf("rung help %s lists %q:\n%s", cmd, s, stdout.String())
			}
		}
		if !strings.HasPrefix(stdout.String(), "usage: rung "+cmd+" [flags]\n\n") {
			t.Errorf("rung help %s: header:\n%s", cmd, stdout.String())
		}
	}
}

// TestCLIErrorsOneLine: every usage error is one line of error and one pointer to
// --help, each problem of a configuration on a line of its own, never the usage.
func TestCLIErrorsOneLine(t *testing.T) {
	for _, tc := range cliCases() {
		if tc.code != 2 || tc.args == nil {
			continue
		}
		var stdout, stderr bytes.Buffer
		cli(context.Background(), tc.args, envMap(tc.env), &stdout, &stderr)
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		last := lines[len(lines)-1]
		if !regexp.MustCompile(`^run 'rung( [a-z-]+)* --help' for usage$`).MatchString(last) {
			t.Errorf("%s: last line %q does not point to --help", tc.name, last)
		}
		for _, l := range lines[:len(lines)-1] {
			if !regexp.MustCompile(`^rung( [a-z-]+)*: \S`).MatchString(l) || strings.Contains(l, `\n`) || strings.Contains(l, "usage:") {
				t.Errorf("%s: %q is not one plain error line", tc.name, l)
			}
		}
		if stdout.Len() != 0 {
			t.Errorf("%s: a usage error printed to stdout:\n%s", tc.name, stdout.String())
		}
	}
}

func TestVersion(t *testing.T) {
	for _, tt := range []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{"released", debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "v1.4.0"},
			Settings: []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
				{Key: "vcs.revision", Value: "ce271fe"}, {Key: "vcs.time", Value: "2026-12-07T15:00:00Z"}, {Key: "vcs.modified", Value: "false"}}},
			"rung v1.4.0, commit ce271fe, committed 2026-12-07T15:00:00Z, go1.27.3 linux/arm64\n"},
		{"local changes", debug.BuildInfo{GoVersion: "go1.27.3", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "ce271fe"}, {Key: "vcs.modified", Value: "true"}}},
			"rung (devel), commit ce271fe (modified), go1.27.3\n"},
		{"no vcs", debug.BuildInfo{GoVersion: "go1.27.3"}, "rung (devel), go1.27.3\n"},
	} {
		if got := versionText(&tt.info); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	// The binary reads its own build information, by either spelling.
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(rungBin, args...).Output()
		if err != nil {
			t.Fatalf("rung %s: %v", args[0], err)
		}
		if !regexp.MustCompile(`^rung \S+.*, go1\.\d+\S* \w+/\w+\n$`).Match(out) {
			t.Errorf("rung %s: %q", args[0], out)
		}
	}
}

// FuzzUsageErrors: whatever the command line, serve's flags either parse or come back
// as a usage error that exitCode prints as lines naming the command, then the pointer
// to --help; never the usage, never a panic.
func FuzzUsageErrors(f *testing.F) {
	for _, s := range []string{"--batch-size 0", "--when-full maybe --relay=x", "-listen", "--drain-timeout 30",
		"---x", "-- extra", "--=1", "--max-conns 99999999999999999999", "--rate-ip NaN", "-h"} {
		f.Add(s, "7")
	}
	f.Fuzz(func(t *testing.T, line, envValue string) {
		var c serveConfig
		fs := newFlags("serve")
		c.flags(fs)
		err := parseFlags(fs, strings.Fields(line), envMap(map[string]string{"RUNG_MAX_BATCH": envValue}))
		if err == nil {
			err = c.validate()
			if err == nil {
				return
			}
			err = badUsage(fs, err)
		}
		var stdout, stderr bytes.Buffer
		code := exitCode(err, &stdout, &stderr)
		if errors.Is(err, flag.ErrHelp) {
			if code != 0 || !strings.HasPrefix(stdout.String(), "usage: rung serve [flags]\n") {
				t.Fatalf("help: exit %d\n%s", code, stdout.String())
			}
			return
		}
		lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
		if code != 2 || stdout.Len() != 0 || len(lines) < 2 || lines[len(lines)-1] != "run 'rung serve --help' for usage" {
			t.Fatalf("%q: exit %d\nstdout:\n%s\nstderr:\n%s", line, code, stdout.String(), stderr.String())
		}
		for _, l := range lines[:len(lines)-1] {
			if !strings.HasPrefix(l, "rung serve: ") || strings.Contains(l, "usage:") {
				t.Fatalf("%q: line %q", line, l)
			}
		}
	})
}
