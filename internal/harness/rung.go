package harness

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// rungPkg is the command RungBinary builds.
const rungPkg = "github.com/rungdev/rung/cmd/rung"

// staleAfter is how long a cached binary nobody has asked for is kept.
const staleAfter = time.Hour

var rungBin struct {
	once sync.Once
	path string
	err  error
}

// RungBinary returns the path of a rung binary built from the module's source as it is
// now, for tests that run rung as a user does: flags, signals, exit codes.
//
// `go test ./...` runs each package's tests in a process of its own, so a per-process
// build would link rung once per package. Instead the binary is cached in a directory
// shared by those processes, under a name keyed by a hash of everything the build reads
// (the files of every package of the module that cmd/rung imports, go.mod, go.sum, the
// toolchain and the build environment); a file lock lets one process build it while the
// others wait. A changed source gives a new key, so a stale binary is never used.
// Binaries no one has asked for in an hour are removed.
//
// Under -race (Race) the binary is built with -race too, so the rung processes a test
// starts are checked as well: a race makes rung print the report on stderr and exit
// with status 66 however it was asked to stop, which a test that checks the exit status
// of a stopped rung sees.
//
// $RUNG_TEST_BIN names a binary to use instead (one built from a known commit while the
// tree is mid-edit).
func RungBinary(t testing.TB) string {
	t.Helper()
	rungBin.once.Do(func() {
		if bin := os.Getenv("RUNG_TEST_BIN"); bin != "" {
			rungBin.path = bin
			return
		}
		rungBin.path, rungBin.err = buildRung()
	})
	if rungBin.err != nil {
		t.Fatal(rungBin.err)
	}
	return rungBin.path
}

func buildRung() (string, error) {
	key, root, err := sourceKey()
	if err != nil {
		return "", fmt.Errorf("hash rung's source: %w", err)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "rung-test-bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("make the binary cache: %w", err)
	}
	bin := filepath.Join(dir, "rung-"+key)
	if touch(bin) {
		return bin, nil
	}
	unlock, err := lockFile(bin + ".lock")
	if err != nil {
		return "", fmt.Errorf("lock %s: %w", bin, err)
	}
	defer unlock()
	if touch(bin) { // another process built it while this one waited
		return bin, nil
	}
	prune(dir)
	tmp := fmt.Sprintf("%s.tmp%d", bin, os.Getpid())
	args := []string{"build", "-o", tmp}
	if Race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, rungPkg)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build %s: %v\n%s", rungPkg, err, out)
	}
	// The rename is atomic: a process that finds the binary finds all of it.
	if err := os.Rename(tmp, bin); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return bin, nil
}

// sourceKey hashes what building cmd/rung reads, and returns the module's root too.
func sourceKey() (key, root string, err error) {
	// Each line: the package's directory, then the files the build reads from it.
	const format = `{{if .Module}}{{if eq .Module.Path "github.com/rungdev/rung"}}` +
		`{{.Module.Dir}}|{{.Dir}}|{{join .GoFiles "|"}}|{{join .CgoFiles "|"}}|{{join .EmbedFiles "|"}}` +
		"\n{{end}}{{end}}"
	var stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-deps", "-f", format, rungPkg)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("go list %s: %v\n%s", rungPkg, err, stderr.Bytes())
	}
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), runtime.GOOS, runtime.GOARCH, Race,
		os.Getenv("GOFLAGS"), os.Getenv("CGO_ENABLED"), os.Getenv("GOTOOLCHAIN"))
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) < 2 {
			continue
		}
		root = f[0]
		for _, name := range f[2:] {
			if name == "" {
				continue
			}
			if err := hashFile(h, filepath.Join(f[1], name)); err != nil {
				return "", "", err
			}
		}
	}
	if root == "" {
		return "", "", errors.New("go list named no package of module github.com/rungdev/rung")
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		if err := hashFile(h, filepath.Join(root, name)); err != nil {
			return "", "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:24], root, nil
}

func hashFile(h io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(h, "%s\x00", path)
	_, err = io.Copy(h, f)
	return err
}

// touch reports whether bin exists, and marks it used now so prune keeps it.
func touch(bin string) bool {
	now := time.Now()
	return os.Chtimes(bin, now, now) == nil
}

// prune removes binaries, locks and leftovers of failed builds that no one has used for
// staleAfter.
func prune(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err == nil && time.Since(info.ModTime()) > staleAfter {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
