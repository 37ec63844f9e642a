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
		grown := 0
		if b[0] == 1 {
			grown = 2 // version 1 has no event time and sequence: a zero each in version 2
		}
		if len(again) > len(b)+grown {
			t.Fatalf("re-encoding grew: %d bytes from %d", len(again), len(b))
		}
		var s2 schemas.Signal
		if err := Parse(again, &s2); err != nil || !sameSignal(&s, &s2) {
			t.Fatalf("second parse: %v, %+v vs %+v", err, s2, s)
		}
	})
}

// FuzzParseFrames checks that ParseFrames never panics, appends nothing on error, and
// that what it accepts survives a round trip through AppendFrame.
func FuzzParseFrames(f *testing.F) {
	s := fullSignal()
	f.Add(AppendFrame(AppendFrame(nil, &s), &schemas.Signal{Type: schemas.TypePageview}))
	f.Add(AppendFrame(nil, &s)[:20])
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		prefix := []schemas.Signal{{Type: schemas.TypeEvent, Name: "kept"}}
		got, err := ParseFrames(b, prefix)
		if err != nil {
			if len(got) != 1 || got[0].Name != "kept" {
				t.Fatalf("error %v, and dst changed: %d signals", err, len(got))
			}
			return
		}
		var again []byte
		for i := range got[1:] {
			again = AppendFrame(again, &got[1+i])
		}
		back, err := ParseFrames(again, nil)
		if err != nil || len(back) != len(got)-1 {
			t.Fatalf("second parse: %v, %d signals, want %d", err, len(back), len(got)-1)
		}
		for i := range back {
			if !sameSignal(&back[i], &got[1+i]) {
				t.Fatalf("frame %d: %+v vs %+v", i, back[i], got[1+i])
			}
		}
	})
}
