package collector

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
)

// counting fills each new salt with one more than the last, so a test can tell them apart.
func counting() func([]byte) {
	var n byte
	return func(b []byte) {
		n++
		for i := range b {
			b[i] = n
		}
	}
}

func TestSaltRotation(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 9, 30, 0, 0, time.UTC)
	ip := []byte{127, 0, 0, 1}
	type want struct {
		cur, prev byte // the fill byte of each salt after the step; 0: zeroed
	}
	for _, tc := range []struct {
		name  string
		steps []time.Duration // offsets from t0 at which an address is hashed (negative: expire only)
		want  want
	}{
		{"first use makes a salt", []time.Duration{0}, want{1, 0}},
		{"same salt all day", []time.Duration{0, 23*time.Hour + 59*time.Minute}, want{1, 0}},
		{"rotates after a day, keeps the previous", []time.Duration{0, 24 * time.Hour}, want{2, 1}},
		{"previous kept until 48 h after it was made", []time.Duration{0, 24 * time.Hour, 47*time.Hour + 59*time.Minute}, want{2, 1}},
		{"previous zeroed 48 h after it was made", []time.Duration{0, 24 * time.Hour, 48 * time.Hour}, want{3, 2}},
		{"after two idle days the old salt is gone at once", []time.Duration{0, 72 * time.Hour}, want{2, 0}},
		{"a rotation late in the day keeps the previous for its 48 h only", []time.Duration{0, 30 * time.Hour, 47 * time.Hour}, want{2, 1}},
		{"expired with no request to rotate it", []time.Duration{0, 24 * time.Hour, -48 * time.Hour}, want{2, 0}},
		{"both expired with no request", []time.Duration{0, 24 * time.Hour, -72 * time.Hour}, want{0, 0}},
		{"a clock that steps back makes a new salt", []time.Duration{time.Hour, 0}, want{2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSalts(counting())
			for _, d := range tc.steps {
				if d < 0 {
					s.expire(t0.Add(-d))
					continue
				}
				s.sum(ip, t0.Add(d))
			}
			if got := (want{s.cur.key[0], s.prev.key[0]}); got != tc.want {
				t.Errorf("salts (current, previous) = %v, want %v", got, tc.want)
			}
			for _, sl := range []salt{s.cur, s.prev} {
				if sl.made.IsZero() != (sl.key == [16]byte{}) {
					t.Errorf("salt %v made %v: a zeroed salt must have no time and a kept one a key", sl.key, sl.made)
				}
			}
		})
	}
}

func TestSaltSum(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	a, b := []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}
	s := newSalts(counting())
	day1 := s.sum(a, t0)
	if s.sum(a, t0.Add(time.Hour)) != day1 {
		t.Error("the same address hashed differently within a day")
	}
	if s.sum(b, t0) == day1 {
		t.Error("two addresses hashed alike")
	}
	if other := newSalts(func(p []byte) { p[0] = 0xff }).sum(a, t0); other == day1 {
		t.Error("the hash does not depend on the salt")
	}
	day2 := s.sum(a, t0.Add(25*time.Hour))
	if day2 == day1 {
		t.Error("the same address hashed alike across a rotation")
	}
	if h, ok := s.sumPrevious(a, t0.Add(25*time.Hour)); !ok || h != day1 {
		t.Errorf("previous day's hash = %x, %v; want %x, true", h, ok, day1)
	}
	if _, ok := s.sumPrevious(a, t0.Add(48*time.Hour)); ok {
		t.Error("previous day's salt still usable 48 h after it was made")
	}
}

func TestSaltExpireWait(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	s := newSalts(counting())
	if d := s.expire(t0); d != 0 {
		t.Errorf("nothing kept: next expiry in %v, want 0", d)
	}
	s.sum(nil, t0)
	if d := s.expire(t0.Add(time.Hour)); d != 47*time.Hour {
		t.Errorf("one salt an hour old: next expiry in %v, want 47h", d)
	}
	s.sum(nil, t0.Add(30*time.Hour))
	if d := s.expire(t0.Add(30 * time.Hour)); d != 18*time.Hour {
		t.Errorf("previous salt 30 h old: next expiry in %v, want 18h", d)
	}
}

func TestSaltSumAllocs(t *testing.T) {
	harness.SkipAllocsUnderRace(t)
	s := newSalts(counting())
	ip := make([]byte, 16)
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { s.sum(ip, now) }); n != 0 {
		t.Errorf("salted hash of an address: %v allocations, want 0", n)
	}
}

func BenchmarkSaltSum(b *testing.B) {
	s := newSalts(counting())
	ip := make([]byte, 16)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		s.sum(ip, now)
	}
}

func TestLoggerHidesAddresses(t *testing.T) {
	var out bytes.Buffer
	l := logger{slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, tc := range []struct {
		format string
		args   []any
	}{
		{"error when serving connection %q<->%q: %v", []any{"127.0.0.1:8080", "203.0.113.9:51234",
			&net.OpError{Op: "read", Net: "tcp", Source: &net.TCPAddr{IP: net.ParseIP("203.0.113.9"), Port: 51234}, Err: errors.New("i/o timeout")}}},
		{"error when serving connection %q<->%q: %v", []any{"[::1]:8080", "[2001:db8::7]:443", errors.New("reset by 2001:db8::7")}},
		{"The number of connections from %s exceeds MaxConnsPerIP=%d", []any{net.ParseIP("198.51.100.23"), 4}},
		{"from %s", []any{net.ParseIP("::ffff:198.51.100.23")}},
	} {
		out.Reset()
		l.Printf(tc.format, tc.args...)
		for _, addr := range []string{"203.0.113.9", "2001:db8::7", "198.51.100.23", "::1", "127.0.0.1"} {
			if strings.Contains(out.String(), addr) {
				t.Errorf("logged %q: it names the address %s", out.String(), addr)
			}
		}
		if !strings.Contains(out.String(), "[address]") {
			t.Errorf("logged %q: no [address] in place of the address", out.String())
		}
	}
}
