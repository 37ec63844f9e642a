// Package rung holds no code: this file tests the dependency graph of the whole module,
// so that the arrows keep pointing one way (see the package map in README.md).
package rung

import (
	"bufio"
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/rungdev/rung"

// within reports whether pkg (a path inside the module, without the module prefix) is
// one of the packages named, or below one of them.
func within(pkg string, names ...string) bool {
	for _, n := range names {
		if pkg == n || strings.HasPrefix(pkg, n+"/") {
			return true
		}
	}
	return false
}

// forbidden says why the import from → to breaks the graph, or "" when it may stand.
// Both are paths inside the module without the module prefix.
func forbidden(from, to string) string {
	switch {
	case within(to, "cmd"):
		return "nothing imports cmd: it only wires"
	case within(from, "stitch", "collector", "sink", "preagg", "buffer") && within(to, "tiers"):
		return "the product does not depend on the tier examples; what both need lives in the product"
	case within(from, "bench") && within(to, "sink"):
		return "bench is an outside client of rung: it reads the sink with its own queries"
	case within(from, "collector") && within(to, "preagg"):
		return "the ingest edge does not know the pre-aggregation or its queries"
	}
	return ""
}

func TestForbidden(t *testing.T) {
	for _, c := range []struct {
		from, to string
		bad      bool
	}{
		{"stitch", "tiers/sqldb", true},
		{"stitch/outbox", "tiers/eventlog", true},
		{"sink/sqlite", "tiers/place", true},
		{"preagg/stats", "tiers/live", true},
		{"buffer/stream", "tiers/level", true},
		{"collector", "preagg/dashboard", true},
		{"collector/snippet", "preagg", true},
		{"bench", "sink/clickhouse", true},
		{"bench", "sink", true},
		{"tiers/place", "cmd/rung", true},
		{"cmd/rung", "tiers/place", false},
		{"tiers/eventlog", "stitch/events", false},
		{"preagg/dashboard", "preagg/stats", false},
		{"preagg", "sink", false},
		{"collector", "buffer", false},
		{"bench", "schemas", false},
		{"stitchery", "tiers", false}, // a prefix of a name is not the package
		{"sinks", "tiersx", false},
	} {
		if got := forbidden(c.from, c.to) != ""; got != c.bad {
			t.Errorf("forbidden(%q, %q) = %v, want %v", c.from, c.to, got, c.bad)
		}
	}
}

// TestDependencyGraph lists every package of the module with its imports, those of its
// tests included, and fails on each import forbidden says may not stand, naming it.
func TestDependencyGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f",
		`{{.ImportPath}}{{range .Imports}} {{.}}{{end}}{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}`,
		"./...").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	var pkgs, edges int
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		from, ok := strings.CutPrefix(f[0], module+"/")
		if !ok {
			continue // the module root, this file's package
		}
		pkgs++
		for _, imp := range f[1:] {
			to, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			edges++
			if why := forbidden(from, to); why != "" {
				t.Errorf("%s imports %s: %s", from, to, why)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if pkgs < 20 || edges < 50 {
		t.Fatalf("go list found %d packages and %d imports between them: not the whole module", pkgs, edges)
	}
}
