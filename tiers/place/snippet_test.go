package place

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// repoRoot finds the module this package lives in: its directory and its path.
func repoRoot(t *testing.T) (dir, module string) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir = wd; ; dir = filepath.Dir(dir) {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
					return dir, strings.TrimSpace(m)
				}
			}
			t.Fatalf("%s/go.mod has no module line", dir)
		}
		if filepath.Dir(dir) == dir {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}

type snippet struct {
	name string
	src  []byte
	file *ast.File
	fset *token.FileSet
}

func readSnippets(t *testing.T) []snippet {
	t.Helper()
	names, err := fs.Glob(snippetFS, "snippets/*.go.txt")
	if err != nil || len(names) == 0 {
		t.Fatalf("no snippets: %v", err)
	}
	var out []snippet
	for _, n := range names {
		src, err := snippetFS.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, n, src, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("snippet %s does not parse: %v", n, err)
			continue
		}
		out = append(out, snippet{name: filepath.Base(n), src: src, file: f, fset: fset})
	}
	return out
}

// exports lists what a package declares at top level: "Name" for funcs, types, vars and
// consts, "Type.Method" for methods and "Type.Field" for struct fields, exported only.
func exports(dir string) (map[string]bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	fset := token.NewFileSet()
	n := 0
	for _, ent := range ents {
		name := ent.Name()
		if ent.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		n++
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					out[d.Name.Name] = true
				} else if len(d.Recv.List) == 1 {
					out[recvType(d.Recv.List[0].Type)+"."+d.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						out[s.Name.Name] = true
						if st, ok := s.Type.(*ast.StructType); ok {
							for _, fld := range st.Fields.List {
								for _, id := range fld.Names {
									out[s.Name.Name+"."+id.Name] = true
								}
								if len(fld.Names) == 0 { // embedded
									out[s.Name.Name+"."+recvType(fld.Type)] = true
								}
							}
						}
					case *ast.ValueSpec:
						for _, id := range s.Names {
							out[id.Name] = true
						}
					}
				}
			}
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("no Go files in %s", dir)
	}
	for k := range out {
		if !ast.IsExported(k[strings.LastIndex(k, ".")+1:]) || !ast.IsExported(strings.Split(k, ".")[0]) {
			delete(out, k)
		}
	}
	return out, nil
}

// recvType names a receiver or embedded type: T, *T, T[K], pkg.T all give T.
func recvType(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return recvType(e.X)
	case *ast.IndexExpr:
		return recvType(e.X)
	case *ast.IndexListExpr:
		return recvType(e.X)
	case *ast.SelectorExpr:
		return e.Sel.Name
	case *ast.Ident:
		return e.Name
	}
	return ""
}

// ref is one use of a rung package in a snippet: pkg.Name, or pkg.Type{Field: ...}.
type ref struct {
	path string // import path
	name string // "Name" or "Type.Field"
	pos  token.Position
}

func (r ref) String() string {
	return fmt.Sprintf("%s.%s", r.path[strings.LastIndex(r.path, "/")+1:], r.name)
}

func snippetRefs(s snippet, module string) []ref {
	imports := map[string]string{} // local name → path, rung packages only
	for _, im := range s.file.Imports {
		p, _ := strconv.Unquote(im.Path.Value)
		if p != module && !strings.HasPrefix(p, module+"/") {
			continue
		}
		name := p[strings.LastIndex(p, "/")+1:]
		if im.Name != nil {
			name = im.Name.Name
		}
		imports[name] = p
	}
	pkgSel := func(e ast.Expr) (string, string, bool) {
		sel, ok := e.(*ast.SelectorExpr)
		if !ok {
			return "", "", false
		}
		id, ok := sel.X.(*ast.Ident)
		if !ok || imports[id.Name] == "" {
			return "", "", false
		}
		return imports[id.Name], sel.Sel.Name, true
	}
	var refs []ref
	ast.Inspect(s.file, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			if p, name, ok := pkgSel(n); ok {
				refs = append(refs, ref{p, name, s.fset.Position(n.Pos())})
			}
		case *ast.CompositeLit:
			typ := n.Type
			for {
				if ix, ok := typ.(*ast.IndexExpr); ok {
					typ = ix.X
				} else if ix, ok := typ.(*ast.IndexListExpr); ok {
					typ = ix.X
				} else {
					break
				}
			}
			if p, name, ok := pkgSel(typ); ok {
				for _, el := range n.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok {
						if k, ok := kv.Key.(*ast.Ident); ok {
							refs = append(refs, ref{p, name + "." + k.Name, s.fset.Position(kv.Pos())})
						}
					}
				}
			}
		}
		return true
	})
	return refs
}

// TestSnippetIdentifiers checks every rung identifier a snippet names — pkg.Name, and
// the fields of pkg.Type{...} literals — against the exported declarations in the
// repository's source, so that "how to build it" cannot drift from the packages it
// teaches. It reports every missing one, by snippet.
func TestSnippetIdentifiers(t *testing.T) {
	root, module := repoRoot(t)
	cache := map[string]map[string]bool{}
	missingPkg := map[string]error{}
	var missing []string
	total := 0
	for _, s := range readSnippets(t) {
		refs := snippetRefs(s, module)
		if len(refs) == 0 {
			t.Errorf("snippet %s uses no rung package; how to build it is how to build it with rung", s.name)
		}
		for _, r := range refs {
			total++
			ex, ok := cache[r.path]
			if !ok && missingPkg[r.path] == nil {
				dir := filepath.Join(root, filepath.FromSlash(strings.TrimPrefix(r.path, module)))
				var err error
				ex, err = exports(dir)
				if err != nil {
					missingPkg[r.path] = err
				}
				cache[r.path] = ex
			}
			if err := missingPkg[r.path]; err != nil {
				missing = append(missing, fmt.Sprintf("%s: %s (package %s is missing: %v)", r.pos, r, r.path, err))
				continue
			}
			if !ex[r.name] {
				missing = append(missing, fmt.Sprintf("%s: %s is not declared by %s", r.pos, r, r.path))
			}
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Errorf("%d of %d rung identifiers in the snippets do not exist:\n  %s", len(missing), total, strings.Join(missing, "\n  "))
	}
	if total < 40 {
		t.Errorf("only %d rung identifiers checked; the snippets lost their substance", total)
	}
}

// TestSnippetsCompile builds every snippet as a package of its own against the
// repository as it is, with the go command's -overlay (nothing is written into the
// tree): the snippets are real Go that type-checks against rung's real API, methods and
// signatures included.
func TestSnippetsCompile(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the snippets: %v", err)
	}
	root, module := repoRoot(t)
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, here)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	replace := map[string]string{}
	var pkgs []string
	byPkg := map[string]string{}
	for _, s := range readSnippets(t) {
		base := strings.TrimSuffix(s.name, ".go.txt")
		// A directory no one will ever create: the packages exist only in the overlay.
		pkgDir := filepath.Join(here, "internal", "snippetbuild", base)
		src := filepath.Join(tmp, base+".go")
		if err := os.WriteFile(src, s.src, 0o644); err != nil {
			t.Fatal(err)
		}
		replace[filepath.Join(pkgDir, "snippet.go")] = src
		pkg := module + "/" + filepath.ToSlash(filepath.Join(rel, "internal", "snippetbuild", base))
		pkgs = append(pkgs, pkg)
		byPkg[pkg] = s.name
	}
	overlay, err := json.Marshal(map[string]any{"Replace": replace})
	if err != nil {
		t.Fatal(err)
	}
	ovl := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(ovl, overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, append([]string{"build", "-overlay", ovl}, pkgs...)...)
	cmd.Dir = root
	// Never touch go.mod or the network: the snippets build from what the module has.
	cmd.Env = append(os.Environ(), "GOFLAGS="+strings.TrimSpace(os.Getenv("GOFLAGS")+" -mod=readonly"), "GOPROXY=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("run go build: %v", err)
		}
		msg := out.String()
		for pkg, name := range byPkg {
			msg = strings.ReplaceAll(msg, pkg, "snippet "+name)
		}
		t.Fatalf("the snippets do not compile against the repository:\n%s", msg)
	}
}

// TestSnippetFiles: every snippet file is used by a card, is gofmt-clean, and is in
// package example.
func TestSnippetFiles(t *testing.T) {
	e := newEngine(t)
	used := map[string]bool{}
	for _, c := range e.Cards() {
		for _, s := range append(slices.Clone(c.Build), c.BuildSignals...) {
			if s.Snippet != "" {
				used[s.Snippet] = true
			}
		}
	}
	var files []string
	for _, s := range readSnippets(t) {
		files = append(files, s.name)
		if !used[s.name] {
			t.Errorf("snippet %s is used by no card", s.name)
		}
		if s.file.Name.Name != "example" {
			t.Errorf("snippet %s is package %s, want example", s.name, s.file.Name.Name)
		}
		formatted, err := format.Source(s.src)
		if err != nil {
			t.Errorf("gofmt %s: %v", s.name, err)
		} else if !bytes.Equal(formatted, s.src) {
			t.Errorf("snippet %s is not gofmt-clean", s.name)
		}
	}
	for name := range used {
		if !slices.Contains(files, name) {
			t.Errorf("a card uses snippet %s, which does not exist", name)
		}
	}
}
