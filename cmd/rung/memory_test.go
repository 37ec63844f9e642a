package main

import (
	"testing"

	"github.com/rungdev/rung/buffer"
)

// workingSink states its working memory as the ClickHouse sink does; plainSink states
// none, as SQLite (its page cache is outside Go's heap) and discard.
type workingSink struct{ store }

func (workingSink) WorkingMemory(inFlight int64) int64 { return 4 * inFlight }

type plainSink struct{ store }

// TestMemoryLimit: the limit is the buffer's bound and stated overhead, the sink's
// working memory for the flushes in flight when it states one, and sessionBytes for
// each session open when it is read.
func TestMemoryLimit(t *testing.T) {
	bcfg := buffer.Config{MaxBytes: 128 << 20, FullWait: 1}
	base := bcfg.MaxBytes + buffer.Overhead(bcfg)
	tests := []struct {
		name string
		sink store
		open int
		want int64
	}{
		{"stated sink", workingSink{}, 0, base + 4*buffer.InFlight(bcfg)},
		{"stated sink and sessions", workingSink{}, 1000, base + 4*buffer.InFlight(bcfg) + 1000*sessionBytes},
		{"sink stating nothing", plainSink{}, 10, base + 10*sessionBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemoryLimit(bcfg, tt.sink, func() int { return tt.open })
			if got := m.bytes(); got != tt.want {
				t.Errorf("limit %d, want %d", got, tt.want)
			}
		})
	}
	if in := buffer.InFlight(bcfg); in != bcfg.MaxBytes/2 {
		t.Errorf("InFlight = %d, want half of MaxBytes (%d): the flushes' budget changed, and with it the sink's stated memory", in, bcfg.MaxBytes/2)
	}
}
