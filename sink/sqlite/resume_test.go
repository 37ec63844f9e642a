package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
)

// Resume hands the sessions over a chunk at a time, the most recently active first,
// each chunk whole before the next is read.
func TestResumeChunks(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "sink.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const visitors, chunk, base = 95, 10, int64(1_700_000_000_000)
	b := &sink.Batch{}
	for i := range visitors { // visitor i last active at base + i seconds
		for j := range 3 {
			at := base + int64(i)*1000 + int64(j)
			b.Signals = append(b.Signals, schemas.Signal{Type: schemas.TypePageview, ReceivedAt: at, Site: "a.example",
				AnonymousID: fmt.Sprintf("v%03d", i), EventID: fmt.Sprintf("e%03d-%d", i, j), URL: "https://a.example/", Path: "/"})
			b.SessionMs = append(b.SessionMs, base+int64(i)*1000)
		}
	}
	if err := s.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	next := visitors - 1
	skipped, err := s.resume(ctx, 30*60_000, sink.ResumeScope{}, chunk, func(rs []sink.Resume) error {
		sizes = append(sizes, len(rs))
		for _, r := range rs {
			if want := fmt.Sprintf("v%03d", next); r.Session.AnonymousID != want || len(r.Signals) != 3 {
				t.Fatalf("got %s with %d signals, want %s with 3, the most recent first", r.Session.AnonymousID, len(r.Signals), want)
			}
			next--
		}
		return nil
	})
	if err != nil || skipped != 0 {
		t.Fatalf("Resume: %d skipped, %v", skipped, err)
	}
	if fmt.Sprint(sizes) != "[10 10 10 10 10 10 10 10 10 5]" {
		t.Errorf("chunks of %v, want nine of 10 and one of 5", sizes)
	}
	stop := errors.New("stop")
	if _, err := s.resume(ctx, 30*60_000, sink.ResumeScope{}, chunk, func([]sink.Resume) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Resume after its callback failed: %v, want that error", err)
	}
}
