package place

import (
	"embed"
	"fmt"
	"go/parser"
	"go/token"
	"strings"
)

// The "how to build it" code lives in snippets/ as whole Go files (package example,
// with their imports) so that a test can parse each one and check every rung identifier
// it names against the repository. The card shows the file without its package clause.
//
//go:embed snippets/*.go.txt
var snippetFS embed.FS

func loadSnippet(s *Step) error {
	if s.Snippet == "" {
		return nil
	}
	src, err := snippetFS.ReadFile("snippets/" + s.Snippet)
	if err != nil {
		return fmt.Errorf("load snippet %s: %w", s.Snippet, err)
	}
	code, err := displayCode(s.Snippet, src)
	if err != nil {
		return err
	}
	s.Code = code
	return nil
}

// displayCode drops the package clause (and the blank line after it); everything else —
// imports included, since they say which rung package to use — is shown as written.
func displayCode(name string, src []byte) (string, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.PackageClauseOnly)
	if err != nil {
		return "", fmt.Errorf("parse snippet %s: %w", name, err)
	}
	end := fset.Position(f.Name.End()).Offset
	return strings.TrimSpace(string(src[end:])), nil
}
