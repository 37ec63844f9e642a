package harness

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

// TestLedgerCheck feeds Check each violation it exists to find, and the cases it must
// let through.
func TestLedgerCheck(t *testing.T) {
	// The scenario of every case: a, b, c acknowledged; r refused; u unanswered; then
	// a resent and refused (an acknowledgement stands); d refused, then acknowledged.
	ledger := func() *Ledger {
		l := NewLedger()
		l.Record(Acked, "a", "b", "c")
		l.Record(Refused, "r", "a", "d")
		l.Record(Unsure, "u")
		l.Record(Acked, "d")
		return l
	}
	all := map[string]int{"a": 1, "b": 1, "c": 1, "d": 1}
	with := func(edit func(m map[string]int)) map[string]int {
		m := map[string]int{}
		for k, v := range all {
			m[k] = v
		}
		edit(m)
		return m
	}
	for _, c := range []struct {
		name string
		o    Outcome
		want []string // a substring of each problem, in order; none: the check passes
	}{
		{"all stored", Outcome{Stored: all}, nil},
		{"the unanswered one stored once", Outcome{Stored: with(func(m map[string]int) { m["u"] = 1 })}, nil},
		{"missing, counted", Outcome{Stored: with(func(m map[string]int) { delete(m, "b") }), Dropped: 1}, nil},
		{"missing, counted, as the scenario allows",
			Outcome{Stored: with(func(m map[string]int) { delete(m, "b") }), Dropped: 1, MayDrop: func(id string) bool { return id == "b" }}, nil},
		{"missing, uncounted", Outcome{Stored: with(func(m map[string]int) { delete(m, "b") })},
			[]string{"1 acknowledged signals missing, 0 counted dropped: b"}},
		{"counted but not missing", Outcome{Stored: all, Dropped: 2},
			[]string{"0 acknowledged signals missing, 2 counted dropped"}},
		{"missing where the scenario drops nothing",
			Outcome{Stored: with(func(m map[string]int) { delete(m, "c") }), Dropped: 1, MayDrop: func(id string) bool { return id == "b" }},
			[]string{"1 acknowledged signals missing that the scenario could not have dropped: c"}},
		{"spurious", Outcome{Stored: with(func(m map[string]int) { m["x"] = 1 })},
			[]string{"1 stored but never sent: x"}},
		{"duplicate", Outcome{Stored: with(func(m map[string]int) { m["a"] = 2 })},
			[]string{"1 stored more than once: a"}},
		{"the unanswered one twice", Outcome{Stored: with(func(m map[string]int) { m["u"] = 2 })},
			[]string{"1 stored more than once: u"}},
		{"refused but stored", Outcome{Stored: with(func(m map[string]int) { m["r"] = 1 })},
			[]string{"1 refused signals stored, 0 may be: r"}},
		{"refused but stored, as the mode allows", Outcome{Stored: with(func(m map[string]int) { m["r"] = 1 }), RefusedMayLand: 1}, nil},
		{"memory under its bound", Outcome{Stored: all, Memory: []Memory{{"live heap", 1 << 20, 2 << 20}}}, nil},
		{"memory over its bound", Outcome{Stored: all, Memory: []Memory{{"live heap", 3 << 20, 2 << 20}}},
			[]string{"live heap 3072 KiB, over its bound of 2048 KiB"}},
		{"everything at once", Outcome{Stored: map[string]int{"a": 3, "r": 1, "z": 1}, Memory: []Memory{{"RSS", 9 << 10, 1 << 10}}},
			[]string{"3 acknowledged signals missing, 0 counted dropped: b c d", "1 stored but never sent: z",
				"1 stored more than once: a", "1 refused signals stored, 0 may be: r", "RSS 9 KiB, over its bound of 1 KiB"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			problems, tally := ledger().check(c.o)
			if len(problems) != len(c.want) {
				t.Fatalf("problems %q, want %d: %q (%s)", problems, len(c.want), c.want, tally)
			}
			for i, p := range problems {
				if !strings.Contains(p, c.want[i]) {
					t.Errorf("problem %d %q, want it to say %q", i, p, c.want[i])
				}
			}
		})
	}
}

// TestLedgerCollect reads /collect's answers as a client does.
func TestLedgerCollect(t *testing.T) {
	ids := []string{"a", "b", "c"}
	for _, c := range []struct {
		name   string
		status int
		body   string
		err    error
		again  []int
		answer map[string]Answer // the answer each id was recorded with
	}{
		{"202", 202, `{"accepted":3,"rejected":0}`, nil, nil, map[string]Answer{"a": Acked, "b": Acked, "c": Acked}},
		{"202 with a rejection", 202, `{"accepted":2,"rejected":1,"errors":[{"index":1,"pointer":"/site","reason":"x"}]}`, nil,
			[]int{1}, map[string]Answer{"a": Acked, "b": Refused, "c": Acked}},
		{"503", 503, `{"error":"buffer full"}`, nil, []int{0, 1, 2}, map[string]Answer{"a": Refused, "b": Refused, "c": Refused}},
		{"400", 400, `{"accepted":0}`, nil, []int{0, 1, 2}, map[string]Answer{"a": Refused, "b": Refused, "c": Refused}},
		{"no answer", 0, "", errors.New("connection reset"), []int{0, 1, 2}, map[string]Answer{"a": Unsure, "b": Unsure, "c": Unsure}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := NewLedger()
			again := l.Collect(ids, c.status, []byte(c.body), c.err)
			if len(again) != len(c.again) {
				t.Errorf("again %v, want %v", again, c.again)
			}
			for i := range min(len(again), len(c.again)) {
				if again[i] != c.again[i] {
					t.Errorf("again %v, want %v", again, c.again)
				}
			}
			for id, want := range c.answer {
				s := l.ids[id]
				got := map[Answer]int{Acked: s.acked, Refused: s.refused, Unsure: s.unsure}
				if got[want] != 1 || s.acked+s.refused+s.unsure != 1 {
					t.Errorf("%s recorded %+v, want one %d", id, *s, want)
				}
			}
		})
	}
}

// TestLedgerConcurrent: clients record at once (run under -race in make race).
func TestLedgerConcurrent(t *testing.T) {
	l := NewLedger()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 100 {
				l.Collect([]string{string(rune('a' + w)), string(rune('a'+w)) + string(rune('0'+i%10))}, 202, nil, nil)
			}
		})
	}
	wg.Wait()
	if n, sent := l.Count(Acked); n != 88 || sent != 88 {
		t.Errorf("%d acknowledged of %d sent, want 88 of 88", n, sent)
	}
}
