package schemas

import (
	"cmp"
	"slices"
	"strconv"
	"sync"
	"testing"
)

func TestEventTime(t *testing.T) {
	const recv = 1_000_000_000_000
	tests := []struct {
		name             string
		ts, sentAt, want int64
	}{
		{"made when sent", 500, 500, recv},
		{"made 40 minutes before sending", 0, 40 * 60_000, recv - 40*60_000},
		{"client clock a year behind shifts nothing", 5_000, 65_000, recv - 60_000},
		{"client clock far ahead shifts nothing", 9e13, 9e13 + 1_000, recv - 1_000},
		{"made after it was sent: never in the future", 2_000, 1_000, recv},
		{"older than the bound: at the bound", 0, 3 * MaxLagMs, recv - MaxLagMs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EventTime(recv, tt.ts, tt.sentAt); got != tt.want {
				t.Errorf("EventTime(%d, %d, %d) = %d, want %d", int64(recv), tt.ts, tt.sentAt, got, tt.want)
			}
		})
	}
}

// TestDecodeEventTime checks that only a v2 signal with both ts and sent_at is placed by
// the client's times, and that the signals of a body take consecutive sequence numbers in
// body order.
func TestDecodeEventTime(t *testing.T) {
	r := newTestRegistry(t)
	const recv = 1_700_000_000_000
	body := `[{"type":"pageview","v":2,"site":"example.com","anonymous_id":"visitor-0001","url":"https://example.com/","ts":100000,"sent_at":160000},` +
		`{"type":"event","v":2,"site":"example.com","anonymous_id":"visitor-0001","name":"form_submitted","ts":100000},` +
		`{"type":"exposure","site":"example.com","anonymous_id":"visitor-0001","experiment":"x","variant":"y"},` +
		`{"type":"exposure","site":"example.com","anonymous_id":"visitor-0001","experiment":"x","variant":"y","ts":1}]`
	var seq Sequence
	var b Batch
	if err := r.Decode(body, Meta{ReceivedAt: recv, Seq: &seq}, 10, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Signals) != 3 || len(b.Rejected) != 1 || b.Rejected[0].Index != 3 {
		t.Fatalf("accepted %d, rejected %+v; want 3 and the v1 signal with ts", len(b.Signals), b.Rejected)
	}
	for i, want := range []int64{recv - 60_000, recv, recv} {
		if got := b.Signals[i].EventAt; got != want {
			t.Errorf("signal %d: event time %d, want %d", i, got, want)
		}
		if b.Signals[i].ReceivedAt != recv {
			t.Errorf("signal %d: received_at %d, want %d", i, b.Signals[i].ReceivedAt, int64(recv))
		}
	}
	first := b.Signals[0].Seq
	if first < uint64(recv)<<seqShift {
		t.Errorf("sequence %d is below the receive time's %d", first, uint64(recv)<<seqShift)
	}
	for i := range b.Signals {
		if got := b.Signals[i].Seq; got != first+uint64(i) {
			t.Errorf("signal %d: sequence %d, want %d", i, got, first+uint64(i))
		}
	}
	b.Reset()
	if err := r.Decode(body, Meta{ReceivedAt: recv - 5, Seq: &seq}, 10, &b); err != nil {
		t.Fatal(err)
	}
	if got := b.Signals[0].Seq; got <= first+2 {
		t.Errorf("a later request's sequence %d is not above the earlier one's %d (its clock read earlier)", got, first+2)
	}
}

// TestSequenceConcurrent takes numbers from many goroutines: none is handed out twice.
func TestSequenceConcurrent(t *testing.T) {
	var (
		q    Sequence
		mu   sync.Mutex
		seen = map[uint64]bool{}
		wg   sync.WaitGroup
	)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				n := 1 + (g+i)%5
				first := q.Reserve(n, int64(i%3))
				mu.Lock()
				for k := range uint64(n) {
					if seen[first+k] {
						t.Errorf("number %d handed out twice", first+k)
					}
					seen[first+k] = true
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestSequenceFollowsEventTime sends a request whose signals are out of the order they
// were made: their sequence follows their event times, ties in body order.
func TestSequenceFollowsEventTime(t *testing.T) {
	r := newTestRegistry(t)
	sig := func(name string, ts int) string {
		return `{"type":"event","v":2,"site":"example.com","anonymous_id":"visitor-0001","name":"` + name +
			`","ts":` + strconv.Itoa(ts) + `,"sent_at":5000}`
	}
	body := "[" + sig("c", 3000) + "," + sig("a", 1000) + "," + sig("b1", 2000) + "," + sig("b2", 2000) + "]"
	var q Sequence
	var b Batch
	if err := r.Decode(body, Meta{ReceivedAt: 1_700_000_000_000, Seq: &q}, 10, &b); err != nil {
		t.Fatal(err)
	}
	got := slices.Clone(b.Signals)
	slices.SortFunc(got, func(x, y Signal) int { return cmp.Compare(x.Seq, y.Seq) })
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	if want := []string{"a", "b1", "b2", "c"}; !slices.Equal(names, want) {
		t.Errorf("in sequence order %v, want %v", names, want)
	}
}
