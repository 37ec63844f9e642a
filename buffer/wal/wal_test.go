package wal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// rec frames payload as one record.
func rec(payload string) []byte {
	b := append(Begin(nil), payload...)
	Seal(b)
	return b
}

func open(t *testing.T, dir string, cfg Config) (*Log, *metrics.Set) {
	t.Helper()
	set := metrics.NewSet()
	l, err := Open(dir, cfg, set, quiet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, set
}

// appendOne holds, appends and returns the segment of one record.
func appendOne(t *testing.T, l *Log, payload string) uint32 {
	t.Helper()
	r := rec(payload)
	seg, err := l.Hold(1, len(r))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), r, len(r)); err != nil {
		t.Fatal(err)
	}
	return seg
}

func replayAll(t *testing.T, l *Log) []string {
	t.Helper()
	var got []string
	if err := l.Replay(func(p []byte) error { got = append(got, string(p)); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRecordRoundTrip(t *testing.T) {
	for _, p := range []string{"x", "a signal", string(bytes.Repeat([]byte{0}, 1000))} {
		b := rec(p)
		got, n, err := Decode(append(b, "next"...))
		if err != nil || string(got) != p || n != len(b) {
			t.Errorf("Decode(rec(%.10q)) = %.10q, %d, %v; want it back, %d", p, got, n, err, len(b))
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := rec("payload")
	flipped := slices.Clone(good)
	flipped[HeaderLen+2] ^= 0x20
	badLen := slices.Clone(good)
	badLen[0]++
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTorn},
		{"half a header", good[:5], ErrTorn},
		{"half a payload", good[:len(good)-3], ErrTorn},
		{"flipped payload byte", flipped, ErrCorrupt},
		{"length one more", badLen, ErrTorn}, // reads past the end
		{"zeroes", make([]byte, 64), ErrCorrupt},
		{"length past MaxRecord", []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, ErrCorrupt},
	} {
		if _, _, err := Decode(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestReopenReplays appends, closes, and finds every record again in order.
func TestReopenReplays(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, Config{SegmentBytes: 200})
	var want []string
	for i := range 40 {
		p := fmt.Sprintf("record-%03d", i)
		appendOne(t, l, p)
		want = append(want, p)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(segmentFiles(t, dir)); n < 3 {
		t.Fatalf("%d segments for 40 records of 18 bytes in 200-byte segments; want rotation", n)
	}
	l2, set := open(t, dir, Config{SegmentBytes: 200})
	if got := replayAll(t, l2); !slices.Equal(got, want) {
		t.Fatalf("replayed %q, want %q", got, want)
	}
	if n := counter(set, "rung_wal_cut_total"); n != 0 {
		t.Errorf("a clean log had %d tails cut", n)
	}
	if err := l2.Forget(); err != nil {
		t.Fatal(err)
	}
	if f := segmentFiles(t, dir); len(f) != 0 {
		t.Errorf("after Forget: %v left", f)
	}
}

func counter(set *metrics.Set, name string) uint64 {
	return set.GetOrCreateCounter(name).Get()
}

// TestRotationAndDeletion: a segment goes once it and every older one are sealed and
// hold nothing; not before, not out of order.
func TestRotationAndDeletion(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, Config{SegmentBytes: 100})
	var segs []uint32
	for i := range 12 {
		segs = append(segs, appendOne(t, l, fmt.Sprintf("payload-%02d-xxxxxxxxxxxx", i)))
	}
	distinct := slices.Compact(slices.Clone(segs))
	if len(distinct) < 3 {
		t.Fatalf("segments %v: want rotation every few records", segs)
	}
	files := len(segmentFiles(t, dir))
	// Deliver everything of the second segment first: nothing may go, the first still
	// holds records.
	second := distinct[1]
	for _, s := range segs {
		if s == second {
			l.Done(s, 1)
		}
	}
	if n := len(segmentFiles(t, dir)); n != files {
		t.Fatalf("%d segments after delivering the second only, want %d (the first still holds)", n, files)
	}
	for _, s := range segs {
		if s == distinct[0] {
			l.Done(s, 1)
		}
	}
	if n := len(segmentFiles(t, dir)); n != files-2 {
		t.Fatalf("%d segments after delivering the first two, want %d", n, files-2)
	}
	for _, s := range segs {
		if s != distinct[0] && s != second {
			l.Done(s, 1)
		}
	}
	// The current segment is sealed once it holds nothing and is synced: none is left.
	if f := segmentFiles(t, dir); len(f) != 0 {
		t.Fatalf("after delivering everything: %v left", f)
	}
	// And the log goes on.
	appendOne(t, l, "after")
	if n := len(segmentFiles(t, dir)); n != 1 {
		t.Fatalf("%d segments after one more record, want 1", n)
	}
}

// TestSizeBound: Hold refuses past MaxBytes, counting reservations not yet appended,
// and takes again once delivered segments are deleted.
func TestSizeBound(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, Config{SegmentBytes: 1000, MaxBytes: 1000})
	r := rec(string(bytes.Repeat([]byte("x"), 92))) // 100 bytes
	var segs []uint32
	for range 9 { // 8 bytes of segment header + 9 records
		seg, err := l.Hold(1, len(r))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(context.Background(), r, len(r)); err != nil {
			t.Fatal(err)
		}
		segs = append(segs, seg)
	}
	if _, err := l.Hold(1, len(r)); !errors.Is(err, ErrFull) {
		t.Fatalf("Hold past MaxBytes: %v, want ErrFull", err)
	}
	small, err := l.Hold(1, 50) // a reservation counts before its Append
	if err != nil {
		t.Fatalf("Hold of 50 bytes within the bound: %v", err)
	}
	if _, err := l.Hold(1, 50); !errors.Is(err, ErrFull) {
		t.Fatalf("Hold past MaxBytes counting a reservation: %v, want ErrFull", err)
	}
	l.Append(context.Background(), nil, 50) // gives it back, logs nothing
	l.Done(small, 1)
	for _, s := range segs {
		l.Done(s, 1)
	}
	if _, err := l.Hold(1, len(r)); err != nil {
		t.Fatalf("Hold after everything was delivered: %v", err)
	}
}

// TestGroupCommit: concurrent appenders share syncs, and each returns only once its
// record is on disk (a reopen finds every record whose Append returned).
func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	l, set := open(t, dir, Config{Linger: 2 * time.Millisecond})
	const writers, each = 16, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := rec(fmt.Sprintf("w%02d-%03d", w, i))
				if _, err := l.Hold(1, len(r)); err != nil {
					t.Error(err)
					return
				}
				if err := l.Append(context.Background(), r, len(r)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	syncs := counter(set, "rung_wal_syncs_total")
	if syncs == 0 || syncs >= writers*each {
		t.Fatalf("%d syncs for %d appends: want fewer syncs than appends", syncs, writers*each)
	}
	t.Logf("%d appends, %d syncs", writers*each, syncs)
	// Every record is in the file already, before Close: Append returned after the sync.
	b, err := os.ReadFile(segmentFiles(t, dir)[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, n, err := scan(b); err != nil || n != writers*each {
		t.Fatalf("the segment holds %d good records (%v), want %d", n, err, writers*each)
	}
}

// TestTornTail cuts a log mid-record, and flips a byte in another, then reopens it:
// Open cuts each bad tail, counts it, and Replay gives the good records before it.
func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte) []byte
		keep   int // records left of 10
	}{
		{"truncated mid-record", func(b []byte) []byte { return b[:len(b)-5] }, 9},
		{"truncated mid-header", func(b []byte) []byte { return b[:len(b)-len(rec("record-09"))+3] }, 9},
		{"flipped byte in record 7", func(b []byte) []byte {
			b[len(segmentMagic)+7*len(rec("record-00"))+HeaderLen+1] ^= 1
			return b
		}, 7},
		{"flipped length of record 4", func(b []byte) []byte {
			b[len(segmentMagic)+4*len(rec("record-00"))] ^= 0x40
			return b
		}, 4},
		{"header only half written", func(b []byte) []byte { return b[:3] }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := open(t, dir, Config{})
			for i := range 10 {
				appendOne(t, l, fmt.Sprintf("record-%02d", i))
			}
			l.Close()
			path := segmentFiles(t, dir)[0]
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			l2, set := open(t, dir, Config{})
			got := replayAll(t, l2)
			if len(got) != tc.keep {
				t.Fatalf("replayed %d records %q, want the %d before the damage", len(got), got, tc.keep)
			}
			for i, p := range got {
				if want := fmt.Sprintf("record-%02d", i); p != want {
					t.Fatalf("record %d is %q, want %q", i, p, want)
				}
			}
			if n := counter(set, "rung_wal_cut_total"); n != 1 {
				t.Errorf("rung_wal_cut_total %d, want 1", n)
			}
			if n := counter(set, "rung_wal_cut_bytes_total"); n == 0 {
				t.Error("rung_wal_cut_bytes_total 0: nothing counted as cut")
			}
			// The cut is made on disk: a second open finds a clean log.
			l2.Close()
			_, set3 := open(t, dir, Config{})
			if n := counter(set3, "rung_wal_cut_total"); n != 0 {
				t.Errorf("second open cut %d tails, want 0", n)
			}
		})
	}
}
