package snippet

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/rungdev/rung/schemas"
)

// jsonBlock is a fenced ```json block of a Markdown file.
var jsonBlock = regexp.MustCompile("(?s)```json\n(.*?)```")

// signalDocs splits a signal example into the documents /collect validates: the object
// itself, or each element of a batch.
func signalDocs(t *testing.T, name string, b []byte) [][]byte {
	t.Helper()
	var batch []json.RawMessage
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		if err := json.Unmarshal(b, &batch); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out := make([][]byte, len(batch))
		for i, d := range batch {
			out[i] = d
		}
		return out
	}
	return [][]byte{b}
}

func compact(t *testing.T, name string, b []byte) string {
	t.Helper()
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c.String()
}

// TestExamplesValidate checks every signal example the docs show: each file in
// testdata/examples and each JSON block of README.md is valid by the signal schema, and
// the README shows exactly the files.
func TestExamplesValidate(t *testing.T) {
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("testdata/examples/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in testdata/examples (%v)", err)
	}
	examples := map[string]string{} // compact JSON → file
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range signalDocs(t, f, b) {
			if err := reg.Validate("signal.v2", doc); err != nil {
				t.Errorf("%s, document %d: %v", f, i, err)
			}
		}
		examples[compact(t, f, b)] = f
	}

	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := jsonBlock.FindAllSubmatch(readme, -1)
	if len(blocks) < len(files) {
		t.Fatalf("README.md has %d json blocks, fewer than the %d example files", len(blocks), len(files))
	}
	shown := map[string]bool{}
	for i, m := range blocks {
		c := compact(t, "README.md", m[1])
		f, ok := examples[c]
		if !ok {
			t.Errorf("README.md json block %d is in no file of testdata/examples:\n%s", i+1, m[1])
			for j, doc := range signalDocs(t, "README.md", m[1]) {
				if err := reg.Validate("signal.v2", doc); err != nil {
					t.Errorf("README.md json block %d, document %d: %v", i+1, j, err)
				}
			}
			continue
		}
		shown[f] = true
	}
	for _, f := range files {
		if !shown[f] {
			t.Errorf("%s is not shown in README.md", f)
		}
	}
}

// TestExamplesRejectBadSignals makes sure the validation above can fail: a signal t.js
// could be misused into sending is refused.
func TestExamplesRejectBadSignals(t *testing.T) {
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		`{"type":"event","site":"example.com","anonymous_id":"2611814562-49035166","event_id":"1764331302144-1-2-3-4","url":"https://example.com/"}`,
		`{"type":"event","site":"example.com","anonymous_id":"2611814562-49035166","name":"has spaces"}`,
		`{"type":"event","site":"example.com","anonymous_id":"2611814562-49035166","name":"ok","props":"not an object"}`,
		`{"type":"event","site":"example.com","anonymous_id":"2611814562-49035166","name":"refund","value":"not a number"}`,
		`{"type":"exposure","site":"example.com","anonymous_id":"2611814562-49035166","experiment":"no-variant"}`,
		`{"type":"pageview","site":"example.com","anonymous_id":"2611814562-49035166","url":"file:///home/me/page.html"}`,
	} {
		if err := reg.Validate("signal.v2", []byte(bad)); err == nil {
			t.Errorf("accepted a bad signal: %s", bad)
		}
	}
}
