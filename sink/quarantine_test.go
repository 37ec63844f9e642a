package sink_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/sqlite"
)

// sizedStore is the SQLite sink's quarantine, noting the size of every write it has
// stored.
type sizedStore struct {
	*sqlite.SQLite
	mu     sync.Mutex
	writes []int
}

func (s *sizedStore) WriteQuarantine(ctx context.Context, rows []schemas.Quarantined) error {
	if err := s.SQLite.WriteQuarantine(ctx, rows); err != nil {
		return err
	}
	s.mu.Lock()
	s.writes = append(s.writes, len(rows))
	s.mu.Unlock()
	return nil
}

func (s *sizedStore) sizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.writes)
}

// TestQuarantineBatches queues more rows than one batch holds before Run starts: they
// reach the store in full batches and then the rest, one write per period, none lost.
func TestQuarantineBatches(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.MigrateQuarantine(ctx); err != nil {
		t.Fatal(err)
	}
	store := &sizedStore{SQLite: db}
	q := sink.NewQuarantine(store, 24*time.Hour, metrics.NewSet())
	const n = 700 // within the queue, past one batch
	at := time.Now().UnixMilli()
	for i := range n {
		q.Keep(schemas.Quarantined{At: at + int64(i), Site: "a.example", Code: schemas.CodeSchema, Raw: fmt.Sprintf(`{"n":%d}`, i)})
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Run(runCtx)
	}()
	harness.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		if got := sum(store.sizes()); got < n {
			return fmt.Errorf("%d of %d rows written", got, n)
		}
		return nil
	})
	stop()
	<-done
	if got, want := store.sizes(), []int{500, n - 500}; !slices.Equal(got, want) {
		t.Fatalf("writes of %v rows, want %v", got, want)
	}
	rows, err := db.Quarantined(ctx, "", 2*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n {
		t.Fatalf("%d rows in the quarantine, want %d", len(rows), n)
	}
}

func sum(xs []int) int {
	total := 0
	for _, x := range xs {
		total += x
	}
	return total
}
