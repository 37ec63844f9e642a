// Package deploy tests the ways rung is deployed, none of which has Go code of its own:
// the Dockerfile, the compose files (loaded with the compose specification's Go library,
// since no Docker engine runs in CI) and the README's quick start, run verbatim.
package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// root is the repository's root, from this package's directory.
const root = "../.."

// rungBin is the rung binary TestMain builds from the repository.
var rungBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rung-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	rungBin = filepath.Join(dir, "rung")
	build := exec.Command(goBin(), "build", "-o", rungBin, "./cmd/rung")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build rung: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// goBin is the go command of the toolchain that built the test, so the builds it runs
// share its build cache; the one on PATH when that toolchain's root is unknown.
func goBin() string {
	if r := runtime.GOROOT(); r != "" {
		return filepath.Join(r, "bin", "go")
	}
	return "go"
}

// dryRun runs `rung args... --dry-run` with exactly the environment env (as a container
// would: nothing inherited) and returns the configuration it prints.
func dryRun(t *testing.T, args []string, env map[string]string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rungBin, append(append([]string{}, args...), "--dry-run")...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("rung %s --dry-run: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var cfg map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &cfg); err != nil {
		t.Fatalf("rung %s --dry-run printed no JSON configuration: %v\n%s", strings.Join(args, " "), err, stdout.String())
	}
	return cfg
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
