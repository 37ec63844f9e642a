package stream

import (
	"testing"

	"github.com/rungdev/rung/schemas"
)

func BenchmarkAppend(b *testing.B) {
	s := fullSignal()
	dst := make([]byte, 0, EncodedSize(&s))
	b.ReportAllocs()
	b.SetBytes(int64(len(Append(nil, &s))))
	for b.Loop() {
		dst = Append(dst[:0], &s)
	}
}

func BenchmarkParse(b *testing.B) {
	s := fullSignal()
	enc := Append(nil, &s)
	var got schemas.Signal
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if err := Parse(enc, &got); err != nil {
			b.Fatal(err)
		}
	}
}
