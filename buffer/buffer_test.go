package buffer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
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
	kept := make([]schemas.Signal, len(batch))
	for i := range batch {
		kept[i] = owned(batch[i])
	}
	r.batches = append(r.batches, kept)
	return nil
}

// owned is s with strings of its own: a batch's lie in memory the buffer reuses once
// the flush returns.
func owned(s schemas.Signal) schemas.Signal {
	v := reflect.ValueOf(&s).Elem()
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.String {
			f.SetString(strings.Clone(f.String()))
		}
	}
	return s
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

// gate is a flush that holds every batch until open is called (or its context ends).
func gate() (flush FlushFunc, open func()) {
	block := make(chan struct{})
	return func(ctx context.Context, _ []schemas.Signal) error {
		select {
		case <-block:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, func() { close(block) }
}

func TestWhenFull(t *testing.T) {
	for _, policy := range []Policy{Reject, Drop} {
		t.Run(policy.String(), func(t *testing.T) {
			flush, open := gate()
			one := sig("visitor-full", 0)
			max := charge(&one) * 5
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
			open()
			stop()
		})
	}
}

// TestOneVisitorMayFillTheBuffer: the bound is the buffer's, not a shard's. One
// visitor's signals all go to one of 64 shards, and must still be taken until the
// whole buffer is charged, not a 64th of it; then nothing more is, from any visitor,
// until a flush gives the charge back.
func TestOneVisitorMayFillTheBuffer(t *testing.T) {
	flush, open := gate()
	const max = 1 << 20
	b, set, stop := start(t, Config{BatchSize: 100, FlushInterval: 20 * time.Millisecond, MaxBytes: max}, flush)
	defer stop()
	n := 0
	for ; ; n++ {
		s := sig("one-visitor", n)
		if err := b.Push(&s); errors.Is(err, ErrFull) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	one := sig("one-visitor", n)
	if used := b.used.Load(); used+charge(&one) <= max || used < max-chunkBytes {
		t.Errorf("one visitor was refused at %d bytes charged of %d", used, max)
	}
	for i := range 64 {
		s := sig(fmt.Sprintf("other-visitor-%d", i), 0)
		if err := b.Push(&s); !errors.Is(err, ErrFull) {
			t.Fatalf("another visitor's signal into a full buffer: %v, want ErrFull", err)
		}
	}
	if got := metric(set, `rung_buffer_bytes`); got != fmt.Sprint(b.used.Load()) {
		t.Errorf("rung_buffer_bytes = %s, want %d", got, b.used.Load())
	}
	open()
	harness.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if used := b.used.Load(); used != 0 {
			return fmt.Errorf("%d bytes still charged after the flush", used)
		}
		return nil
	})
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
	q := queue{pool: &chunks{}}
	next, want := 0, 0
	var charged int64
	var tk taking
	// Interleave pushes and takes of awkward sizes across chunk boundaries, with signals
	// small, large enough to fill an arena before its slots, and big.
	for round, sizes := range [][2]int{{1, 1}, {300, 100}, {700, 650}, {10, 260}, {513, 600}, {40, 40}} {
		for range sizes[0] {
			s := sig("v", next)
			switch next % 7 {
			case 3:
				s.Props = strings.Repeat("p", bigAt/2)
			case 5:
				s.Props = strings.Repeat("b", bigAt+1)
			}
			charged += charge(&s) + q.push(&s, uint32(next))
			next++
		}
		tk.batch, tk.tags = tk.batch[:0], tk.tags[:0]
		q.take(&tk, sizes[1], math.MaxInt64)
		for i, s := range tk.batch {
			w := sig("v", want)
			if s.EventID != w.EventID || int(tk.tags[i]) != want {
				t.Fatalf("round %d: got %s (tag %d), want %s", round, s.EventID, tk.tags[i], w.EventID)
			}
			if n := len(s.Props); n != map[int]int{3: bigAt / 2, 5: bigAt + 1}[want%7] {
				t.Fatalf("round %d: signal %d came back with %d bytes of props", round, want, n)
			}
			want++
		}
		if q.len() != next-want {
			t.Fatalf("round %d: len %d, want %d", round, q.len(), next-want)
		}
		if len(q.chunks) > q.len()/2+2 {
			t.Fatalf("round %d: %d chunks for %d signals", round, len(q.chunks), q.len())
		}
	}
	if q.len() != 0 || len(q.chunks) != 0 {
		t.Fatalf("%d signals in %d chunks left", q.len(), len(q.chunks))
	}
	if tk.charged != charged {
		t.Errorf("takes released %d bytes, pushes charged %d", tk.charged, charged)
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
				s := sig(fmt.Sprintf("visitor-%d", i), i)
				errs := make([]error, 1)
				b.AppendTagged([]*schemas.Signal{&s}, errs, uint32(7+i%2))
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
// signals, or until they hold the byte budget (MaxBytes / (2 × Flushers)), and keep
// each visitor's order.
func TestBacklogFlushesLargerBatches(t *testing.T) {
	one := sig("backlog", 0)
	size := charge(&one)
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
		// Room for the signals and for what the chunks they close leave unused, which is
		// charged too; a flush's budget is half of it (one flusher).
		{"bytes", Config{BatchSize: 10, MaxBatch: 1 << 20, MaxBytes: 2000*size + 16*chunkBytes}, 1900, func(second []schemas.Signal) error {
			var bytes int64
			for i := range second {
				bytes += charge(&second[i])
			}
			budget := (2000*size + 16*chunkBytes) / 2
			if len(second) <= 10 || len(second) >= 1900 || bytes > budget+chunkLen*size {
				return fmt.Errorf("second flush took %d signals, %d bytes: want more than BatchSize, fewer than all 1900, within the byte budget %d (and one chunk)", len(second), bytes, budget)
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

// TestFullWait: with FullWait, a signal the full buffer has no room for waits for a
// flush to release its charge and is then taken; with no flush in time it is refused;
// and once waitBytes of signals wait, another is refused without waiting.
func TestFullWait(t *testing.T) {
	one := sig("visitor-wait", 0)
	size := charge(&one)
	tests := []struct {
		name     string
		maxBytes int64
		wait     time.Duration
		open     bool // the flush is let go while the signal waits
		want     error
	}{
		{"room comes", size * 64, time.Hour, true, nil},
		{"no room in time", size * 64, 10 * time.Millisecond, false, ErrFull},
		{"too many waiting", size * 5, time.Hour, false, ErrFull}, // waitBytes is under one signal
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flush, open := gate()
			n := int(tt.maxBytes / size)
			b, _, stop := start(t, Config{BatchSize: n, FlushInterval: time.Hour, MaxBytes: tt.maxBytes, Shards: 1,
				Flushers: 1, FullWait: tt.wait}, flush)
			defer stop()
			for i := range n {
				s := sig("visitor-wait", i)
				if err := b.Push(&s); err != nil {
					t.Fatalf("push %d: %v", i, err)
				}
			}
			done := make(chan error, 1)
			go func() {
				s := sig("visitor-wait", n)
				done <- b.Push(&s)
			}()
			if tt.open {
				select {
				case err := <-done:
					t.Fatalf("push into a full buffer returned %v before any flush released its charge", err)
				case <-time.After(20 * time.Millisecond):
				}
				open()
			} else {
				defer open()
			}
			if err := <-done; !errors.Is(err, tt.want) && err != tt.want {
				t.Fatalf("push into a full buffer: %v, want %v", err, tt.want)
			}
		})
	}
}
