package batch

import (
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	p := Policy{Count: 10, Bytes: 1000, Period: time.Second}
	tests := []struct {
		name      string
		p         Policy
		n         int
		size      int64
		age       time.Duration
		full, due bool
	}{
		{"empty is never due", p, 0, 0, time.Hour, false, false},
		{"below every bound", p, 9, 999, time.Second - 1, false, false},
		{"count reached", p, 10, 1, 0, true, true},
		{"count passed", p, 11, 1, 0, true, true},
		{"bytes reached", p, 1, 1000, 0, true, true},
		{"period reached", p, 1, 1, time.Second, false, true},
		{"zero policy bounds nothing", Policy{}, 1 << 20, 1 << 40, 24 * time.Hour, false, false},
		{"count only", Policy{Count: 2}, 1, 1 << 40, 24 * time.Hour, false, false},
		{"bytes only", Policy{Bytes: 10}, 1 << 20, 9, 24 * time.Hour, false, false},
		{"period only", Policy{Period: time.Millisecond}, 1 << 20, 1 << 40, time.Millisecond, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Full(tt.n, tt.size); got != tt.full {
				t.Errorf("Full(%d, %d) = %v, want %v", tt.n, tt.size, got, tt.full)
			}
			if got := tt.p.Due(tt.n, tt.size, tt.age); got != tt.due {
				t.Errorf("Due(%d, %d, %v) = %v, want %v", tt.n, tt.size, tt.age, got, tt.due)
			}
		})
	}
}

func TestPolicyAllocs(t *testing.T) {
	p := Policy{Count: 10, Bytes: 1000, Period: time.Second}
	if n := testing.AllocsPerRun(100, func() { p.Due(5, 500, time.Millisecond) }); n != 0 {
		t.Errorf("Due allocated %.0f times, want 0", n)
	}
}
