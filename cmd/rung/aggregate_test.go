package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/sqlite"
)

// TestFresh: of a batch, the signals the sink holds and has counted are dropped,
// however late their copy comes, and so is every later copy within the batch; and the
// writer does not write again the raw rows of those it holds but has not counted.
func TestFresh(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sig := func(i int) schemas.Signal {
		return schemas.Signal{Type: schemas.TypePageview, ReceivedAt: 1_700_000_000_000 + int64(i), Site: "x.example",
			AnonymousID: fmt.Sprintf("visitor-%d", i%2), EventID: fmt.Sprintf("e%d", i), URL: "https://x.example/", Path: "/"}
	}
	if err := s.Write(ctx, &sink.Batch{Signals: []schemas.Signal{sig(0), sig(1), sig(2)}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		batch   []int
		resent  time.Duration // added to every signal's received_at
		kept    []string
		dropped int
	}{
		{"none stored", []int{5, 6}, 0, []string{"e5", "e6"}, 0},
		{"stored ones dropped", []int{0, 3, 1, 4}, 0, []string{"e3", "e4"}, 2},
		{"copies within the batch", []int{3, 3, 6, 3}, 0, []string{"e3", "e6"}, 2},
		{"a resend hours later", []int{2, 7}, 5 * time.Hour, []string{"e7"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var batch []schemas.Signal
			for _, i := range tt.batch {
				g := sig(i)
				g.ReceivedAt += tt.resent.Milliseconds()
				batch = append(batch, g)
			}
			kept, stored, n, err := fresh(ctx, s, batch)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, g := range kept {
				got = append(got, g.EventID)
			}
			if !reflect.DeepEqual(got, tt.kept) || n != tt.dropped || len(stored) != 0 {
				t.Errorf("kept %v, dropped %d, held uncounted %v; want %v, %d, none", got, n, stored, tt.kept, tt.dropped)
			}
		})
	}

	// The writer drops the stored raw rows, naming them counted, and passes on the rest,
	// rollups included.
	var rec recorder
	s0 := sig(0)
	w := &skipStored{w: &rec, stored: map[sink.Key]bool{sink.KeyOf(&s0): true}}
	landing := []sink.LandingCell{{LandingKey: sink.LandingKey{Site: "x.example", HourMs: 0, LandingPath: "/"}, Cell: 1, Version: 1, Sessions: 1}}
	if err := w.Write(ctx, &sink.Batch{Signals: []schemas.Signal{sig(0), sig(7)}, SessionMs: []int64{10, 70}, Landing: landing}); err != nil {
		t.Fatal(err)
	}
	if len(rec.b.Signals) != 1 || rec.b.Signals[0].EventID != "e7" || rec.b.SessionOf(0) != 70 || len(rec.b.Landing) != 1 ||
		len(rec.b.Counted) != 1 || rec.b.Counted[0].EventID != "e0" {
		t.Errorf("wrote %+v", rec.b)
	}
}

type recorder struct{ b sink.Batch }

func (r *recorder) Write(_ context.Context, b *sink.Batch) error { r.b = *b; return nil }

func TestAggregateConfig(t *testing.T) {
	for _, tt := range []struct {
		name    string
		args    []string
		wantErr string // substring; empty: valid
	}{
		{"needs nats", nil, "--nats is required"},
		{"partition out of range", []string{"--nats", "nats://127.0.0.1:4222", "--partitions", "60-70"}, "--partitions"},
		{"partitions of a smaller stream", []string{"--nats", "nats://127.0.0.1:4222", "--stream-partitions", "8", "--partitions", "8"}, "--partitions"},
		{"ack wait", []string{"--nats", "nats://127.0.0.1:4222", "--ack-wait", "10ms"}, "--ack-wait"},
		{"valid", []string{"--nats", "nats://127.0.0.1:4222", "--partitions", "0-15,32"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := runAggregate(context.Background(), append(tt.args, "--dry-run"), func(string) (string, bool) { return "", false }, &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !strings.Contains(out.String(), `"partitions": "0-15,32"`) {
				t.Fatalf("err %v, dry run:\n%s", err, out.String())
			}
		})
	}
}
