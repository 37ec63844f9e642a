package sinktest

import (
	"context"
	"fmt"
	"testing"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// newest: Newest returns the last n signals of the range, oldest first, and nothing
// outside the range.
func newest(t *testing.T, s Store) {
	ctx := context.Background()
	b := &sink.Batch{}
	for i := range 50 {
		b.Signals = append(b.Signals, signal(i*1000)) // a second apart: distinct received_ms
	}
	if err := s.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	ids := func(got []schemas.Signal) []string {
		out := make([]string, len(got))
		for i := range got {
			out[i] = got[i].EventID
		}
		return out
	}
	want := func(from, to int) []string {
		var out []string
		for i := from; i < to; i++ {
			out = append(out, fmt.Sprintf("event-%06d", i*1000))
		}
		return out
	}
	for _, tt := range []struct {
		name     string
		from, to int64
		n        int
		want     []string
	}{
		{"last 5", base, base + 50*1000, 5, want(45, 50)},
		{"range ends early", base, base + 20*1000, 3, want(17, 20)},
		{"range starts late", base + 47*1000, base + 50*1000, 10, want(47, 50)},
		{"n beyond the range", base, base + 50*1000, 1000, want(0, 50)},
		{"empty range", base + 100*1000, base + 200*1000, 10, nil},
	} {
		got, err := s.Newest(ctx, tt.from, tt.to, tt.n)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if g := ids(got); fmt.Sprint(g) != fmt.Sprint(tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, g, tt.want)
		}
	}
}
