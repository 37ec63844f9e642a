package stream

import (
	"testing"

	"github.com/rungdev/rung/schemas"
)

// FuzzParse checks that Parse never panics, leaves nothing half written on error, and
// that what it accepts survives a round trip through Append.
func FuzzParse(f *testing.F) {
	s := fullSignal()
	f.Add(Append(nil, &s))
	f.Add(Append(nil, &schemas.Signal{Type: schemas.TypePageview}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s schemas.Signal
		if err := Parse(b, &s); err != nil {
			if s != (schemas.Signal{}) {
				t.Fatalf("half-written signal after error %v", err)
			}
			return
		}
		again := Append(nil, &s)
		if len(again) > len(b) {
			t.Fatalf("re-encoding grew: %d bytes from %d", len(again), len(b))
		}
		var s2 schemas.Signal
		if err := Parse(again, &s2); err != nil || !sameSignal(&s, &s2) {
			t.Fatalf("second parse: %v, %+v vs %+v", err, s2, s)
		}
	})
}
