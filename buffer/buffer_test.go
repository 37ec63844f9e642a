package buffer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/goleak"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sinkRecorder is a FlushFunc that keeps what it is given, in order.
type sinkRecorder struct {
	mu      sync.Mutex
	batches [][]schemas.Signal
	fail    error
}

func (r *sinkRecorder) flush(ctx context.Context, batch []schemas.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.batches = append(r.batches, append([]schemas.Signal(nil), batch...))
	return nil
}

func (r *sinkRecorder) signals() []schemas.Signal {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []schemas.Signal
	for _, b := range r.batches {
		all = append(all, b...)
	}
	return all
}

func sig(visitor string, seq int) schemas.Signal {
	return schemas.Signal{Type: schemas.TypePageview, Site: "s", AnonymousID: visitor, EventID: fmt.Sprintf("%s-%06d", visitor, seq)}
}

// bodySig is sig decoded from a body: its strings are spans of the body returned.
func bodySig(visitor string, seq int) (string, schemas.Signal) {
	s := sig(visitor, seq)
	body := s.Site + s.AnonymousID + s.EventID
	s.Site, s.AnonymousID, s.EventID = body[:len(s.Site)], body[len(s.Site):len(s.Site)+len(s.AnonymousID)], body[len(s.Site)+len(s.AnonymousID):]
	return body, s
}

func start(t *testing.T, cfg Config, f FlushFunc) (*Buffer, *metrics.Set, func()) {
	t.Helper()
	set := metrics.NewSet()
	b := New(cfg, f, set)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	stop := func() {
		b.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after Close")
		}
		cancel()
	}
	return b, set, stop
}

func metric(set *metrics.Set, name string) string {
	var sb strings.Builder
	set.WritePrometheus(&sb)
	for _, line := range strings.Split(sb.String(), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return strings.TrimPrefix(line, name+" ")
		}
	}
	return ""
}

func TestOrderPerVisitorUnderConcurrency(t *testing.T) {
	rec := &sinkRecorder{}
	b, _, stop := start(t, Config{BatchSize: 37, FlushInterval: 5 * time.Millisecond, Shards: 8, Flushers: 3}, rec.flush)
	const visitors, each = 20, 500
	var wg sync.WaitGroup
	for v := 0; v < visitors; v++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				s := sig(fmt.Sprintf("visitor-%02d", v), i)
				if err := b.Push(&s); err != nil {
					t.Errorf("Push: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	stop()
	got := rec.signals()
	if len(got) != visitors*each {
		t.Fatalf("flushed %d signals, want %d", len(got), visitors*each)
	}
	next := map[string]int{}
	for _, s := range got {
		want := fmt.Sprintf("%s-%06d", s.AnonymousID, next[s.AnonymousID])
		if s.EventID != want {
			t.Fatalf("visitor %s: got %s, want %s: order broken", s.AnonymousID, s.EventID, want)
		}
		next[s.AnonymousID]++
	}
	if b.Held() != 0 {
		t.Errorf("Held = %d after drain", b.Held())
	}
}

// TestFlushBySizeAndByAge gives each trigger a case the other cannot flush: a full batch
// under an age bound of an hour, and one old signal under a count bound it never reaches.
// Each fails (after the poll's bound) when its trigger is removed.
func TestFlushBySizeAndByAge(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		pushes int
	}{
		{"size", Config{BatchSize: 10, FlushInterval: time.Hour}, 10},
		{"age", Config{BatchSize: 1 << 20, FlushInterval: 50 * time.Millisecond}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &sinkRecorder{}
			tt.cfg.Shards, tt.cfg.Flushers = 1, 1
			b, _, stop := start(t, tt.cfg, rec.flush)
			defer stop()
			for i := range tt.pushes {
				s := sig("visitor-"+tt.name, i)
				if err := b.Push(&s); err != nil {
					t.Fatal(err)
				}
			}
			harness.CheckFor(t, 5*time.Second, time.Millisecond, func() error {
				if n := len(rec.signals()); n != tt.pushes {
					return fmt.Errorf("flushed %d of %d signals before Close", n, tt.pushes)
				}
				return nil
			})
		})
	}
}

func TestWhenFull(t *testing.T) {
	for _, policy := range []Policy{Reject, Drop} {
		t.Run(policy.String(), func(t *testing.T) {
			block := make(chan struct{})
			flush := func(ctx context.Context, batch []schemas.Signal) error {
				select {
				case <-block:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			one := sig("visitor-full", 0)
			max := int64(one.Size() * 5)
			b, set, stop := start(t, Config{BatchSize: 1000, FlushInterval: time.Hour, MaxBytes: max, Shards: 1, Flushers: 1, WhenFull: policy}, flush)
			for i := 0; i < 5; i++ {
				s := sig("visitor-full", i)
				if err := b.Push(&s); err != nil {
					t.Fatalf("push %d: %v", i, err)
				}
			}
			s := sig("visitor-full", 5)
			err := b.Push(&s)
			want, counter := ErrFull, `rung_signals_rejected_total{reason="buffer_full"}`
			if policy == Drop {
				want, counter = ErrDropped, `rung_signals_dropped_total{reason="buffer_full"}`
			}
			if !errors.Is(err, want) {
				t.Fatalf("push over the bound: %v, want %v", err, want)
			}
			if got := metric(set, counter); got != "1" {
				t.Errorf("%s = %q, want 1", counter, got)
			}
			close(block)
			stop()
		})
	}
}

func TestHardStopCountsWhatIsLeft(t *testing.T) {
	flush := func(ctx context.Context, batch []schemas.Signal) error {
		<-ctx.Done() // a sink that never comes back
		return ctx.Err()
	}
	set := metrics.NewSet()
	b := New(Config{BatchSize: 4, FlushInterval: time.Millisecond, Shards: 2, Flushers: 1}, flush, set)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	for i := 0; i < 10; i++ {
		s := sig(fmt.Sprintf("visitor-%d", i), i)
		if err := b.Push(&s); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	if s := sig("late-visitor", 0); !errors.Is(b.Push(&s), ErrClosed) {
		t.Error("Push after Close did not return ErrClosed")
	}
	cancel()
	<-done
	if got := metric(set, `rung_signals_dropped_total{reason="shutdown"}`); got != "10" {
		t.Errorf("dropped for shutdown = %q, want 10", got)
	}
	if b.Held() != 0 {
		t.Errorf("Held = %d", b.Held())
	}
}

func TestSinkErrorIsCounted(t *testing.T) {
	rec := &sinkRecorder{fail: errors.New("table is gone")}
	b, set, stop := start(t, Config{BatchSize: 3, FlushInterval: time.Millisecond, Shards: 1, Flushers: 1}, rec.flush)
	for i := 0; i < 3; i++ {
		s := sig("visitor-err", i)
		if err := b.Push(&s); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if got := metric(set, `rung_signals_dropped_total{reason="sink_error"}`); got != "3" {
		t.Errorf("dropped for sink_error = %q, want 3", got)
	}
}

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"reject": Reject, "drop": Drop} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParsePolicy("block"); err == nil {
		t.Error("ParsePolicy accepted block")
	}
}

func TestQueue(t *testing.T) {
	q := queue{pool: &sync.Pool{New: func() any { return new(chunk) }}}
	next, want := 0, 0
	var out []schemas.Signal
	// Interleave pushes and takes of awkward sizes across chunk boundaries.
	for round, sizes := range [][2]int{{1, 1}, {300, 100}, {700, 650}, {10, 260}, {513, 600}} {
		for i := 0; i < sizes[0]; i++ {
			if i%2 == 0 {
				body, s := bodySig("v", next)
				if !q.push(body, &s, 0) {
					t.Fatal("a signal all of whose strings lie in its body was copied")
				}
			} else {
				s := sig("v", next)
				q.push("", &s, 0)
			}
			next++
		}
		var size int64
		out, _, size = q.take(out[:0], nil, sizes[1], math.MaxInt64)
		var sum int64
		for _, s := range out {
			if s.EventID != sig("v", want).EventID {
				t.Fatalf("round %d: got %s, want %s", round, s.EventID, sig("v", want).EventID)
			}
			sum += int64(s.Size())
			want++
		}
		if sum != size {
			t.Fatalf("round %d: size %d, want %d", round, size, sum)
		}
		if q.len() != next-want {
			t.Fatalf("round %d: len %d, want %d", round, q.len(), next-want)
		}
		if len(q.chunks) > q.len()/chunkLen+2 {
			t.Fatalf("round %d: %d chunks for %d signals", round, len(q.chunks), q.len())
		}
	}
}

// TestDoneReportsTags: every signal's tag comes back through Config.Done once its batch
// is stored or dropped for a sink error, and not when a hard stop abandons it (the
// write-ahead log keeps those for the next start).
func TestDoneReportsTags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flush   func(ctx context.Context, batch []schemas.Signal) error
		hard    bool
		reports int
	}{
		{"stored", func(context.Context, []schemas.Signal) error { return nil }, false, 10},
		{"sink error", func(context.Context, []schemas.Signal) error { return errors.New("table is gone") }, false, 10},
		{"hard stop", func(ctx context.Context, _ []schemas.Signal) error { <-ctx.Done(); return ctx.Err() }, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			got := map[uint32]int{}
			cfg := Config{BatchSize: 4, FlushInterval: time.Millisecond, Shards: 2, Flushers: 1, Done: func(tags []uint32) {
				mu.Lock()
				defer mu.Unlock()
				for _, tag := range tags {
					got[tag]++
				}
			}}
			b := New(cfg, tc.flush, metrics.NewSet())
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- b.Run(ctx) }()
			for i := range 10 {
				body, s := bodySig(fmt.Sprintf("visitor-%d", i), i)
				errs := make([]error, 1)
				b.AppendTagged(body, []*schemas.Signal{&s}, errs, uint32(7+i%2))
				if errs[0] != nil {
					t.Fatal(errs[0])
				}
			}
			b.Close()
			if tc.hard {
				cancel()
			}
			<-done
			cancel()
			mu.Lock()
			defer mu.Unlock()
			if n := got[7] + got[8]; n != tc.reports || (n > 0 && (got[7] != 5 || got[8] != 5)) {
				t.Errorf("Done reported tags %v, want %d reports, half of each tag", got, tc.reports)
			}
		})
	}
}

// TestBacklogFlushesLargerBatches holds the first flush while a backlog builds up
// behind it; the flushes after it take more than BatchSize at once, up to MaxBatch
// signals, or until they hold the byte budget (MaxBytes / (4 × Flushers)), and keep
// each visitor's order.
func TestBacklogFlushesLargerBatches(t *testing.T) {
	one := sig("backlog", 0)
	size := int64(one.Size())
	tests := []struct {
		name    string
		cfg     Config
		backlog int
		check   func(second []schemas.Signal) error
	}{
		{"count", Config{BatchSize: 10, MaxBatch: 35, MaxBytes: 1 << 30}, 100, func(second []schemas.Signal) error {
			if len(second) != 35 {
				return fmt.Errorf("second flush took %d signals, want MaxBatch = 35", len(second))
			}
			return nil
		}},
		{"bytes", Config{BatchSize: 10, MaxBatch: 1 << 20, MaxBytes: 2000 * size}, 1900, func(second []schemas.Signal) error {
			var bytes int64
			for i := range second {
				bytes += int64(second[i].Size())
			}
			if budget := 2000 * size / 4; bytes < budget || len(second) >= 1900 {
				return fmt.Errorf("second flush took %d signals, %d bytes: want the byte budget %d reached, not all 1900", len(second), bytes, budget)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &sinkRecorder{}
			gate := make(chan struct{})
			var once sync.Once
			flush := func(ctx context.Context, batch []schemas.Signal) error {
				once.Do(func() { <-gate })
				return rec.flush(ctx, batch)
			}
			tt.cfg.Shards, tt.cfg.Flushers, tt.cfg.FlushInterval = 1, 1, time.Hour
			b, _, stop := start(t, tt.cfg, flush)
			total := tt.cfg.BatchSize + tt.backlog
			for i := range total {
				s := sig("backlog", i)
				if err := b.Push(&s); err != nil {
					close(gate)
					stop()
					t.Fatal(err)
				}
			}
			close(gate)
			stop() // drains: the last batch may be smaller than BatchSize
			if n := len(rec.signals()); n != total {
				t.Fatalf("flushed %d of %d signals", n, total)
			}
			for i, s := range rec.signals() {
				if s.EventID != sig("backlog", i).EventID {
					t.Fatalf("signal %d is %s: order broken", i, s.EventID)
				}
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.batches) < 2 {
				t.Fatalf("%d flushes", len(rec.batches))
			}
			if err := tt.check(rec.batches[1]); err != nil {
				t.Error(err)
			}
		})
	}
}
