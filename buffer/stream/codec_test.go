package stream

import (
	"encoding/binary"
	"math"
	"strings"
	"testing"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

func fullSignal() schemas.Signal {
	return schemas.Signal{
		Type: schemas.TypeEvent, Bot: true, HasValue: true, ReceivedAt: 1764979200123, EventAt: 1764979140123,
		Seq: 1850904350066810881, Value: -12.5,
		Site: "example.com", AnonymousID: "a-1f3e", EventID: "01HZX3", URL: "https://example.com/p?q=1#f",
		Path: "/p", Referrer: "https://ref.example/", UTMSource: "src", UTMMedium: "med",
		UTMCampaign: "camp", UTMTerm: "term", UTMContent: "content", Name: "signup",
		Experiment: "exp", Variant: "B", Props: `{"plan":"pro","n":3}`,
	}
}

func TestRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 300) // a length past one varint byte
	for _, tc := range []struct {
		name string
		s    schemas.Signal
	}{
		{"full", fullSignal()},
		{"minimal pageview", schemas.Signal{Type: schemas.TypePageview}},
		{"negative time, long strings", schemas.Signal{Type: schemas.TypeExposure, ReceivedAt: -1, URL: long, Props: long}},
		{"value without HasValue", schemas.Signal{Type: schemas.TypeEvent, Value: 3}},
		{"negative zero", schemas.Signal{Type: schemas.TypeEvent, HasValue: true, Value: math.Copysign(0, -1)}},
		{"NaN", schemas.Signal{Type: schemas.TypeEvent, HasValue: true, Value: math.NaN()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := Append(nil, &tc.s)
			if len(b) > EncodedSize(&tc.s) {
				t.Errorf("encoded %d bytes, EncodedSize said at most %d", len(b), EncodedSize(&tc.s))
			}
			var got schemas.Signal
			if err := Parse(b, &got); err != nil {
				t.Fatal(err)
			}
			if !sameSignal(&got, &tc.s) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tc.s)
			}
			// The decoded strings must not refer to b.
			for i := range b {
				b[i] = 0
			}
			if !sameSignal(&got, &tc.s) {
				t.Error("decoded signal changed when the input was overwritten")
			}
		})
	}
}

// sameSignal compares field by field, Value by its bits (NaN, -0).
func sameSignal(a, b *schemas.Signal) bool {
	x, y := *a, *b
	if math.Float64bits(x.Value) != math.Float64bits(y.Value) {
		return false
	}
	x.Value, y.Value = 0, 0
	return x == y
}

func TestParseErrors(t *testing.T) {
	s := fullSignal()
	good := Append(nil, &s)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "header: truncated"},
		{"version", append([]byte{9}, good[1:]...), "unknown codec version 9"},
		{"type zero", append([]byte{1, 0}, good[2:]...), "unknown signal type 0"},
		{"type too big", append([]byte{1, 7}, good[2:]...), "unknown signal type 7"},
		{"flags", append([]byte{1, 2, 0x80}, good[3:]...), "unknown flags 0x80"},
		{"no time", []byte{1, 1, 0}, "received_at: bad varint"},
		{"value cut", []byte{1, 2, flagValue, 2, 1, 2, 3}, "value: truncated"},
		{"no strings", []byte{1, 1, 0, 0}, "string 0 (site) length: truncated"},
		{"string past end", []byte{1, 1, 0, 0, 5, 'a'}, "string 0 (site): length 5 past the end (1 bytes left)"},
		{"cut in the middle", good[:len(good)/2], "truncated"},
		{"cut last byte", good[:len(good)-1], "string 14 (props)"},
		{"trailing", append(append([]byte{}, good...), 0), "1 trailing bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := fullSignal()
			err := Parse(tc.in, &got)
			if err == nil {
				t.Fatalf("Parse(%x) succeeded", tc.in)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if got != (schemas.Signal{}) {
				t.Errorf("signal half written after error: %+v", got)
			}
		})
	}
}

func TestAppendAllocs(t *testing.T) {
	harness.SkipAllocsUnderRace(t)
	s := fullSignal()
	dst := make([]byte, 0, EncodedSize(&s))
	if n := testing.AllocsPerRun(100, func() { dst = Append(dst[:0], &s) }); n != 0 {
		t.Errorf("Append into a buffer with room: %v allocs, want 0", n)
	}
	var got schemas.Signal
	b := Append(nil, &s)
	if n := testing.AllocsPerRun(100, func() { _ = Parse(b, &got) }); n != 1 {
		t.Errorf("Parse: %v allocs, want 1 (the one copy its strings share)", n)
	}
}

func TestFrames(t *testing.T) {
	full := fullSignal()
	var neg schemas.Signal = full
	neg.Value = math.Copysign(0, -1)
	want := []schemas.Signal{full, {Type: schemas.TypePageview, ReceivedAt: -5}, neg}
	var b []byte
	for i := range want {
		b = AppendFrame(b, &want[i])
		if got, exp := len(Append(nil, &want[i])), encodedLen(&want[i]); got != exp {
			t.Errorf("signal %d: encodedLen %d, Append wrote %d", i, exp, got)
		}
	}
	got, err := ParseFrames(b, nil)
	if err != nil || len(got) != len(want) {
		t.Fatalf("ParseFrames: %v, %d signals", err, len(got))
	}
	for i := range want {
		if !sameSignal(&got[i], &want[i]) {
			t.Errorf("frame %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "without frames"},
		{"length past the end", b[:len(b)-1], "frame 2"},
		{"length overflows", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, "frame 0"},
		{"frame not a signal", []byte{2, 9, 9}, "frame 0"},
	} {
		dst := []schemas.Signal{full}
		got, err := ParseFrames(bad.b, dst)
		if err == nil || !strings.Contains(err.Error(), bad.want) || len(got) != 1 {
			t.Errorf("%s: %v (%d signals), want an error about %q and dst untouched", bad.name, err, len(got), bad.want)
		}
	}
}

// TestParseVersion1 reads a signal as a release before event times wrote it (the write
// ahead log may hold such records at an upgrade): its event time is its receive time.
func TestParseVersion1(t *testing.T) {
	v1 := []byte{1, byte(schemas.TypePageview), 0}
	v1 = binary.AppendVarint(v1, 1764979200123)
	for _, f := range []string{"example.com", "visitor-1", "ev-1", "https://example.com/", "/"} {
		v1 = binary.AppendUvarint(v1, uint64(len(f)))
		v1 = append(v1, f...)
	}
	for range 10 {
		v1 = append(v1, 0)
	}
	var s schemas.Signal
	if err := Parse(v1, &s); err != nil {
		t.Fatal(err)
	}
	if s.ReceivedAt != 1764979200123 || s.EventAt != s.ReceivedAt || s.Seq != 0 || s.Path != "/" {
		t.Errorf("got %+v", s)
	}
}
