package schemas

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzDecode is the differential test of the two validation paths: on any body, the
// decoder must not panic or hang; and for a single-object body that passes the scanner's
// own checks (syntax, depth, UTF-8, duplicates, number range), the fast path accepts
// exactly when jsonschema/v5 does. Seeds: testdata/valid, testdata/invalid and
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/valid/*.json")
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, s := range []string{
		okSignal, `[` + okSignal + `]`, `{"type":"event","site":"a","anonymous_id":"12345678","name":"x","value":1e15}`,
		`{"type":"event","site":"a","anonymous_id":"12345678","name":"x","value":1000000000000000.0000001}`,
		`{"type":"exposure","site":"a","anonymous_id":"12345678","experiment":"e","variant":"v","v":1.0}`,
		`{"type":"pageview","site":"a","anonymous_id":"12345678","url":"http://x/\u00e9","props":{"k":"\ud83d\ude00"}}`,
	} {
		f.Add(s)
	}
	r := newTestRegistry(f)
	f.Fuzz(func(t *testing.T, body string) {
		var b Batch
		err := r.Decode(body, Meta{}, 64, &b)
		if err != nil {
			for _, want := range []error{ErrSyntax, ErrTooDeep, ErrNotSignals, ErrEmpty, ErrBatchTooLarge} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("Decode returned an unclassified error: %v", err)
		}
		if r.Disagreements() != 0 {
			t.Fatalf("the oracle accepted a signal the fast path rejected: %q", body)
		}
		if !strings.HasPrefix(strings.TrimLeft(body, " \t\r\n"), "{") {
			return
		}
		switch {
		case len(b.Signals) == 1:
			if err := r.Validate(signalSchema, []byte(body)); err != nil {
				t.Fatalf("fast path accepted, oracle rejected: %v\nbody: %q", err, body)
			}
		case len(b.Rejected) == 1 && b.Rejected[0].Code == CodeSchema:
			if r.Validate(signalSchema, []byte(body)) == nil {
				t.Fatalf("fast path rejected (%+v), oracle accepted\nbody: %q", b.Rejected[0], body)
			}
		}
	})
}
