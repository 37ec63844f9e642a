package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/buffer"
	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

const natsURL = "nats://127.0.0.1:4222"

var streamSeq atomic.Int64

// connect connects to the local nats-server; a server that is down fails the test.
func connect(t testing.TB, urls ...string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	url := natsURL
	if len(urls) > 0 {
		url = strings.Join(urls, ",")
	}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to nats-server at %s (it must be running with -js): %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// newStream makes a stream with a name and subject of its own, deleted when the test ends.
func newStream(t testing.TB, js jetstream.JetStream, cfg StreamConfig) StreamConfig {
	t.Helper()
	n := streamSeq.Add(1)
	cfg.Name = fmt.Sprintf("RUNG_TEST_%d_%d", time.Now().UnixNano(), n)
	cfg.Subject = fmt.Sprintf("rungtest.%d.%d", time.Now().UnixNano(), n)
	if cfg.Partitions == 0 {
		cfg.Partitions = 8
	}
	if err := Ensure(context.Background(), js, cfg); err != nil {
		t.Fatal(err)
	}
	// A cluster that has just lost a node answers once it has elected a new meta
	// leader, which on a loaded machine takes longer than one request's timeout.
	t.Cleanup(func() {
		harness.CheckFor(t, 60*time.Second, 100*time.Millisecond, func() error {
			if err := js.DeleteStream(context.Background(), cfg.Name); err != nil {
				return fmt.Errorf("delete stream %s: %w", cfg.Name, err)
			}
			return nil
		})
	})
	return cfg
}

func signals(prefix string, n, visitors int) []*schemas.Signal {
	out := make([]*schemas.Signal, n)
	for i := range out {
		out[i] = &schemas.Signal{
			Type: schemas.TypePageview, ReceivedAt: int64(i), Site: "example.com",
			AnonymousID: fmt.Sprintf("visitor-%d", i%visitors), EventID: fmt.Sprintf("%s-%06d", prefix, i),
			URL: "https://example.com/", Path: "/",
		}
	}
	return out
}

// publish appends ss in chunks and fails the test on any error.
func publish(t testing.TB, p *Publisher, ss []*schemas.Signal, chunk int) {
	t.Helper()
	errs := make([]error, chunk)
	for i := 0; i < len(ss); i += chunk {
		part := ss[i:min(i+chunk, len(ss))]
		p.Append(context.Background(), part, errs)
		for j, err := range errs[:len(part)] {
			if err != nil {
				t.Fatalf("publish %s: %v", part[j].EventID, err)
			}
		}
	}
}

func metric(set *metrics.Set, name string) string {
	var b strings.Builder
	set.WritePrometheus(&b)
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

func TestParsePartitions(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		p       int
		want    []int
		wantErr string
	}{
		{"0-3", 64, []int{0, 1, 2, 3}, ""},
		{"0-2,40,42-43", 64, []int{0, 1, 2, 40, 42, 43}, ""},
		{" 5 , 1-2 ", 8, []int{1, 2, 5}, ""},
		{"63", 64, []int{63}, ""},
		{"0-63", 64, nil, ""},
		{"", 64, nil, "empty"},
		{"64", 64, nil, "partition 64 out of range: the stream has partitions 0-63"},
		{"3-1", 64, nil, `"3-1": range runs backwards`},
		{"1,0-2", 64, nil, "partition 1 listed twice"},
		{"a", 64, nil, `"a" is not a partition number`},
		{"1-", 64, nil, `"" is not a partition number`},
		{"-1", 64, nil, `"" is not a partition number`},
		{"1,,2", 64, nil, `"" is not a partition number`},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParsePartitions(tc.spec, tc.p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(got) != tc.p {
					t.Fatalf("got %d partitions, want %d", len(got), tc.p)
				}
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPartitionOfIsShardOf(t *testing.T) {
	for _, id := range []string{"", "a", "visitor-1", "0f8e-x"} {
		if PartitionOf(id, 64) != buffer.ShardOf(id, 64) {
			t.Errorf("PartitionOf(%q) differs from buffer.ShardOf", id)
		}
	}
}

func TestEnsure(t *testing.T) {
	_, js := connect(t)
	ctx := context.Background()
	cfg := newStream(t, js, StreamConfig{Partitions: 4, Memory: true})

	if err := Ensure(ctx, js, cfg); err != nil {
		t.Errorf("Ensure of the existing stream: %v", err)
	}
	info, err := js.Stream(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	c := info.CachedInfo().Config
	if c.Description != "rung partitions=4" || c.Discard != jetstream.DiscardNew || c.Duplicates != DefaultDuplicates ||
		len(c.Subjects) != 1 || c.Subjects[0] != cfg.Subject+".*" {
		t.Errorf("stream made as %+v", c)
	}

	other := cfg
	other.Partitions = 8
	err = Ensure(ctx, js, other)
	if err == nil || !strings.Contains(err.Error(), "has 4 partitions, configured 8") {
		t.Errorf("Ensure with another partition count: %v", err)
	}

	// A stream that is not rung's.
	foreign := cfg.Name + "_FOREIGN"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: foreign, Subjects: []string{cfg.Subject + "x.*"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(ctx, foreign)
	err = Ensure(ctx, js, StreamConfig{Name: foreign, Subject: cfg.Subject + "x", Partitions: 4})
	if err == nil || !strings.Contains(err.Error(), "not a rung stream") {
		t.Errorf("Ensure of a foreign stream: %v", err)
	}

	// A consumer refuses to run on a stream of another partition count.
	cons, err := NewConsumer(js, ConsumerConfig{Stream: other, Partitions: []int{0}},
		func(context.Context, []schemas.Signal, []bool) error { return nil }, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Run(ctx); err == nil || !strings.Contains(err.Error(), "has 4 partitions, configured 8") {
		t.Errorf("Consumer.Run on a mismatched stream: %v", err)
	}
}

func TestPublisherClosed(t *testing.T) {
	nc, js := connect(t)
	cfg := newStream(t, js, StreamConfig{Memory: true})
	set := metrics.NewSet()
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg}, set)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	errs := make([]error, 2)
	p.Append(context.Background(), signals("closed", 2, 2), errs)
	for _, err := range errs {
		if !errors.Is(err, buffer.ErrClosed) {
			t.Errorf("Append after Close: %v, want buffer.ErrClosed", err)
		}
	}
	if got := metric(set, `rung_stream_publish_errors_total{reason="closed"}`); got != "2" {
		t.Errorf("closed errors counted %q, want 2", got)
	}
}

func TestStreamFull(t *testing.T) {
	nc, js := connect(t)
	// File storage: see StreamConfig.Memory.
	cfg := newStream(t, js, StreamConfig{MaxBytes: 8 << 10, Partitions: 2})
	set := metrics.NewSet()
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg}, set)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ss := signals("full", 500, 50)
	errs := make([]error, len(ss))
	for i := 0; i < len(ss); i += 10 { // requests of 10, so some fit before the stream is full
		p.Append(context.Background(), ss[i:i+10], errs[i:i+10])
	}
	stored, full := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			stored++
		case errors.Is(err, buffer.ErrFull) && errors.Is(err, errStreamFull):
			full++
		default:
			t.Fatalf("error %v, want nil or stream full", err)
		}
	}
	if stored == 0 || full == 0 {
		t.Fatalf("%d stored, %d refused: want both", stored, full)
	}
	if got := metric(set, `rung_stream_publish_errors_total{reason="stream_full"}`); got != fmt.Sprint(full) {
		t.Errorf("stream_full errors counted %s, want %d", got, full)
	}
	if got := metric(set, `rung_stream_published_total`); got != fmt.Sprint(stored) {
		t.Errorf("published counted %s, want %d", got, stored)
	}
	info, err := js.Stream(context.Background(), cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n == 0 || n > uint64(stored) {
		t.Errorf("stream holds %d messages, %d signals were acked", n, stored)
	}
}

func TestDuplicatesDropped(t *testing.T) {
	nc, js := connect(t)
	cfg := newStream(t, js, StreamConfig{Memory: true})
	set := metrics.NewSet()
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg}, set)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ss := signals("dup", 100, 10)
	publish(t, p, ss, 50)
	info, err := js.Stream(context.Background(), cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	first := info.CachedInfo().State.Msgs
	publish(t, p, ss, 50) // a client retrying the same requests: the same messages
	if info, err = js.Stream(context.Background(), cfg.Name); err != nil {
		t.Fatal(err)
	}
	if n := info.CachedInfo().State.Msgs; n != first || n == 0 || n >= 100 {
		t.Errorf("stream holds %d messages after the retry, %d before: want the same, fewer than the 100 signals (framed by partition)", n, first)
	}
	if got := metric(set, `rung_stream_published_duplicates_total`); got != "100" {
		t.Errorf("duplicates counted %s, want 100", got)
	}
}

func TestPublishNoStream(t *testing.T) {
	nc, _ := connect(t)
	set := metrics.NewSet()
	// No stream listens on this subject: no responders, then JetStream "unavailable".
	cfg := StreamConfig{Subject: fmt.Sprintf("rungtest.nostream.%d", time.Now().UnixNano()), Partitions: 2}
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg, Retries: 1, RetryWait: 10 * time.Millisecond}, set)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	errs := make([]error, 3)
	p.Append(context.Background(), signals("nostream", 3, 3), errs)
	for _, err := range errs {
		if !errors.Is(err, buffer.ErrFull) || !errors.Is(err, errUnavailable) {
			t.Errorf("publish with no stream: %v, want JetStream unavailable (buffer.ErrFull)", err)
		}
	}
	if got := metric(set, `rung_stream_publish_errors_total{reason="unavailable"}`); got != "3" {
		t.Errorf("unavailable errors counted %s, want 3", got)
	}
	if got := metric(set, `rung_stream_publish_retries_total`); got != "3" {
		t.Errorf("retries counted %s, want 3", got)
	}
}

func TestPublisherCloseWaits(t *testing.T) {
	nc, _ := connect(t)
	// No stream takes the subject, so the Append below stays in flight, retrying.
	cfg := StreamConfig{Subject: fmt.Sprintf("rungtest.nostream.%d", time.Now().UnixNano()), Partitions: 2}
	p, err := NewPublisher(nc, PublisherConfig{Stream: cfg, Retries: 2, RetryWait: 50 * time.Millisecond}, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []error, 1)
	go func() {
		errs := make([]error, 2)
		p.Append(context.Background(), signals("inflight", 2, 2), errs)
		done <- errs
	}()
	harness.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		if p.js.PublishAsyncPending() == 0 {
			return errors.New("the Append has not published yet")
		}
		return nil
	})
	p.Close()
	select {
	case errs := <-done:
		for _, err := range errs {
			if !errors.Is(err, buffer.ErrFull) {
				t.Errorf("in-flight Append: %v, want buffer.ErrFull (no stream)", err)
			}
		}
	default:
		t.Fatal("Close returned while an Append was in flight")
	}
}

func TestForming(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&jetstream.APIError{Code: 500, ErrorCode: 10005, Description: "no suitable peers for placement"}, true},
		{fmt.Errorf("create: %w", &jetstream.APIError{Code: 503, ErrorCode: 10008}), true},
		{&jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamNameInUse}, false},
		{jetstream.ErrStreamNameAlreadyInUse, false},
		{context.DeadlineExceeded, false},
	} {
		if got := forming(tc.err); got != tc.want {
			t.Errorf("forming(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
