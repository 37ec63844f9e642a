package schemas

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzDecode is the differential test of the two validation paths: on any body, the
// decoder must not panic or hang; every element of a body it takes is answered once,
// accepted or rejected; and for each element that passes the scanner's own checks
// (syntax, depth, UTF-8, duplicates, number range), the fast path accepts exactly when
// jsonschema/v5 does, whether the body is one signal or a batch. Seeds: the bodies of
// testdata/valid and testdata/invalid, each also inside a batch, and the batches in
// testdata/fuzz/FuzzDecode (which go test loads itself).
func FuzzDecode(f *testing.F) {
	var bodies []string
	names, valid := validFixtures(f)
	for _, name := range names {
		bodies = append(bodies, string(valid[name]))
	}
	for _, c := range invalidCases(f) {
		bodies = append(bodies, string(c.Body))
	}
	bodies = append(bodies,
		okSignal, `{"type":"event","site":"a","anonymous_id":"12345678","name":"x","value":1e15}`,
		`{"type":"event","site":"a","anonymous_id":"12345678","name":"x","value":1000000000000000.0000001}`,
		`{"type":"exposure","site":"a","anonymous_id":"12345678","experiment":"e","variant":"v","v":1.0}`,
		`{"type":"pageview","site":"a","anonymous_id":"12345678","url":"http://x/\u00e9","props":{"k":"\ud83d\ude00"}}`,
	)
	for _, b := range bodies {
		f.Add(b)
		f.Add("[" + okSignal + "," + b + "]")
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
		var elems []json.RawMessage
		switch strings.TrimLeft(body, " \t\r\n")[0] {
		case '{':
			elems = []json.RawMessage{json.RawMessage(body)}
		case '[':
			if json.Unmarshal([]byte(body), &elems) != nil {
				return // encoding/json reads it otherwise: no oracle for its elements
			}
		}
		if got := len(b.Signals) + len(b.Rejected); got != len(elems) || len(b.Index) != len(b.Signals) {
			t.Fatalf("%d elements, answered %d (%d accepted, %d rejected)\nbody: %q", len(elems), got, len(b.Signals), len(b.Rejected), body)
		}
		for _, i := range b.Index {
			if err := r.Validate(signalSchema, elems[i]); err != nil {
				t.Fatalf("element %d: fast path accepted, oracle rejected: %v\nbody: %q", i, err, body)
			}
		}
		for _, rej := range b.Rejected {
			if rej.Code == CodeSchema && r.Validate(signalSchema, elems[rej.Index]) == nil {
				t.Fatalf("element %d: fast path rejected (%+v), oracle accepted\nbody: %q", rej.Index, rej, body)
			}
		}
	})
}
