package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct{ cmd, args string }

// stage is one FROM and the instructions under it.
type stage struct {
	from string
	ins  []instruction
}

func (s stage) all(cmd string) []string {
	var out []string
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

func dockerfile(t *testing.T) []stage {
	t.Helper()
	var stages []stage
	text := strings.ReplaceAll(readFile(t, "Dockerfile"), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{strings.ToUpper(cmd), strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			stages = append(stages, stage{from: in.args})
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before the first FROM", in.cmd)
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	if len(stages) != 2 {
		t.Fatalf("Dockerfile has %d stages, want a build stage and the image", len(stages))
	}
	return stages
}

// execForm parses an instruction's JSON (exec) form.
func execForm(t *testing.T, in string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(in), &out); err != nil {
		t.Fatalf("%q is not in exec form: %v", in, err)
	}
	return out
}

// The build stage runs on the builder's platform and cross-compiles, without cgo, for
// the target one: that is what builds linux/arm64 on an amd64 machine (and back) with
// no emulation. make crossbuild compiles every package the same way.
func TestDockerfileCrossCompiles(t *testing.T) {
	build := dockerfile(t)[0]
	if !strings.HasPrefix(build.from, "--platform=$BUILDPLATFORM ") {
		t.Errorf("build stage FROM %q: want --platform=$BUILDPLATFORM", build.from)
	}
	args := strings.Fields(strings.Join(build.all("ARG"), " "))
	for _, a := range []string{"TARGETOS", "TARGETARCH"} {
		if !slices.Contains(args, a) {
			t.Errorf("build stage declares ARG %v, want %s", args, a)
		}
	}
	var goBuild string
	for _, r := range build.all("RUN") {
		if strings.Contains(r, "go build") {
			goBuild = r
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=$TARGETOS", "GOARCH=$TARGETARCH", "./cmd/rung"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("the build stage's go build %q: want %s", goBuild, want)
		}
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"linux/amd64", "linux/arm64", "darwin/arm64"} {
		if !bytes.Contains(mk, []byte(p)) {
			t.Errorf("the Makefile's crossbuild does not build %s", p)
		}
	}
}

// The image runs as the distroless nonroot user and owns its data directory: /data is
// made in the build stage, copied with owner 65532 before VOLUME declares it, so a
// fresh named volume mounted there inherits the owner.
func TestDockerfileNonRoot(t *testing.T) {
	s := dockerfile(t)
	build, image := s[0], s[1]
	if !strings.HasSuffix(image.from, ":nonroot") {
		t.Errorf("image FROM %q: want a nonroot base", image.from)
	}
	if u := image.all("USER"); len(u) != 1 || u[0] != "65532:65532" {
		t.Errorf("image USER %q: want 65532:65532", u)
	}
	copied, volume := -1, -1
	for i, in := range image.ins {
		f := strings.Fields(in.args)
		switch {
		case in.cmd == "COPY" && len(f) > 0 && f[len(f)-1] == "/data":
			if !slices.Contains(f, "--chown=65532:65532") {
				t.Errorf("COPY %s: want --chown=65532:65532", in.args)
			}
			src := f[len(f)-2]
			if !slices.ContainsFunc(build.all("RUN"), func(r string) bool { return strings.Contains(r, "mkdir -p "+src) }) {
				t.Errorf("COPY %s: the build stage makes no %s", in.args, src)
			}
			copied = i
		case in.cmd == "VOLUME" && in.args == "/data":
			volume = i
		}
	}
	if copied < 0 || volume < copied {
		t.Errorf("the image copies /data at instruction %d and declares VOLUME /data at %d: want both, the copy first", copied, volume)
	}
	if env := image.all("ENV"); !slices.Contains(env, "RUNG_DATA_DIR=/data") {
		t.Errorf("image ENV %q: want RUNG_DATA_DIR=/data", env)
	}
}

// What the image's user meets: rung as uid 65532 opens its stores in a data directory
// made as the Dockerfile makes /data, and cannot in a root-owned one (what a named
// volume was before the Dockerfile set the owner).
func TestDataDirWritableByNonroot(t *testing.T) {
	// Not t.TempDir: its parent is private to root, and the user must reach the binary.
	dir, err := os.MkdirTemp("", "rung-nonroot-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "rung")
	b, err := os.ReadFile(rungBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	migrate := func(data string) ([]byte, error) {
		cmd := exec.Command("setpriv", "--reuid=65532", "--regid=65532", "--clear-groups", bin, "migrate")
		cmd.Env = []string{"RUNG_DATA_DIR=" + data}
		cmd.Dir = dir
		return cmd.CombinedOutput()
	}
	owned := filepath.Join(dir, "owned")
	if err := os.Mkdir(owned, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(owned, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	if out, err := migrate(owned); err != nil {
		t.Fatalf("rung migrate as 65532 in a directory it owns: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(owned, "telemetry.db")); err != nil {
		t.Errorf("rung migrate as 65532 made no telemetry.db: %v", err)
	}
	rootOwned := filepath.Join(dir, "root-owned")
	if err := os.Mkdir(rootOwned, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := migrate(rootOwned); err == nil {
		t.Errorf("rung migrate as 65532 in a root-owned directory succeeded: the test cannot tell the owner matters\n%s", out)
	}
}

// The image's default command is a valid rung command line, under the image's
// environment and the token its comment asks for.
func TestDockerfileCommand(t *testing.T) {
	image := dockerfile(t)[1]
	entry := image.all("ENTRYPOINT")
	cmd := image.all("CMD")
	if len(entry) != 1 || len(cmd) != 1 {
		t.Fatalf("image ENTRYPOINT %q, CMD %q: want one of each", entry, cmd)
	}
	if e := execForm(t, entry[0]); !slices.Equal(e, []string{"/rung"}) {
		t.Fatalf("ENTRYPOINT %q: want [\"/rung\"]", e)
	}
	env := map[string]string{"RUNG_API_TOKEN": "a-token-of-the-test"}
	for _, e := range image.all("ENV") {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	cfg := dryRun(t, execForm(t, cmd[0]), env)
	if cfg["data_dir"] != "/data" {
		t.Errorf("the image's command stores in %v, want /data", cfg["data_dir"])
	}
}

// The build context holds what `go build ./cmd/rung` reads and leaves out history,
// local data and test output.
func TestDockerignore(t *testing.T) {
	var patterns []*regexp.Regexp
	for _, line := range strings.Split(readFile(t, ".dockerignore"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			t.Fatalf(".dockerignore: %q: this test does not read exceptions", line)
		}
		patterns = append(patterns, ignorePattern(line))
	}
	ignored := func(path string) bool {
		for p := path; p != "."; p = filepath.Dir(p) { // a directory left out takes its files
			for _, re := range patterns {
				if re.MatchString(p) {
					return true
				}
			}
		}
		return false
	}
	for _, p := range []string{".git", ".git/HEAD", "rung-data/telemetry.db", "examples/leadform/rung-data/business.db",
		"rung", "bench/bench.test", "cpu.prof", "cmd/rung/mem.pprof"} {
		if !ignored(p) {
			t.Errorf("the build context holds %s", p)
		}
	}
	list := exec.Command(goBin(), "list", "-deps", "-json=Module,Dir,GoFiles,EmbedFiles", "./cmd/rung")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	needed := []string{"go.mod", "go.sum"}
	for dec.More() {
		var p struct {
			Module              *struct{ Path string }
			Dir                 string
			GoFiles, EmbedFiles []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != "github.com/rungdev/rung" {
			continue
		}
		rel, err := filepath.Rel(abs, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			needed = append(needed, filepath.Join(rel, f))
		}
	}
	if len(needed) < 50 {
		t.Fatalf("go list found %d files of rung's own for ./cmd/rung: too few to be right", len(needed))
	}
	for _, f := range needed {
		if ignored(f) {
			t.Errorf("the build context leaves out %s, which go build ./cmd/rung reads", f)
		}
	}
}

// ignorePattern is a .dockerignore line as Docker reads it: relative to the context's
// root, * and ? within one path element, ** any number of them.
func ignorePattern(p string) *regexp.Regexp {
	p = strings.TrimPrefix(filepath.Clean(p), "/")
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case p[i] == '*':
			b.WriteString("[^/]*")
		case p[i] == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}
