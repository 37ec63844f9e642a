package harness

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestOnlyTestsImport: no package of the module imports harness outside its tests, so
// nothing of it reaches the rung binary.
func TestOnlyTestsImport(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`,
		"github.com/rungdev/rung/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const me = "github.com/rungdev/rung/internal/harness"
	for line := range strings.Lines(string(out)) {
		pkg, imports, _ := strings.Cut(strings.TrimSpace(line), " ")
		for _, imp := range strings.Fields(imports) {
			if imp == me {
				t.Errorf("%s imports %s outside its tests", pkg, me)
			}
		}
	}
}

// TestRungBinary: the binary runs (its help names the serve command), and asking again
// gives the same one.
func TestRungBinary(t *testing.T) {
	bin := RungBinary(t)
	out, err := exec.Command(bin, "help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "serve") {
		t.Fatalf("%s help: %v\n%s", bin, err, out)
	}
	if again := RungBinary(t); again != bin {
		t.Errorf("second RungBinary = %s, first %s", again, bin)
	}
}

func TestSourceKeyStable(t *testing.T) {
	k1, root, err := sourceKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, _, err := sourceKey()
	if err != nil {
		t.Fatal(err)
	}
	if k1 != k2 || root == "" {
		t.Errorf("keys %s and %s of an unchanged tree at %q", k1, k2, root)
	}
}

func TestCheckFor(t *testing.T) {
	n := 0
	CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 {
		t.Errorf("f called %d times, want 3: CheckFor stops at the first success", n)
	}
}
