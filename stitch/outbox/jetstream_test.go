package outbox

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/stitch/sqldb"
)

func newJetStreamRelay(t *testing.T, b backend, nc *nats.Conn, broker BrokerConfig, cfg RelayConfig) (*Relay, *JetStream) {
	t.Helper()
	js, err := NewJetStream(nc, broker)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRelay(b.DB, b.Dialect, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, js
}

func newProjector(t *testing.T, b backend, nc *nats.Conn, broker BrokerConfig, cfg ProjectorConfig) *Projector {
	t.Helper()
	if cfg.FetchWait == 0 {
		cfg.FetchWait = 100 * time.Millisecond
	}
	p, err := NewProjector(b.DB, b.Dialect, nc, broker, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run starts fn in a goroutine owned by the test: it is stopped and waited for at cleanup.
func run(t *testing.T, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stopped with %v", err)
		}
	})
}

// Three relays share one PostgreSQL outbox and one stream: every event reaches the stream
// once (no duplicate acks at all: nothing was shipped twice), each lead's events in the
// order they were written, and the projector writes each into the events table once. A
// rolled-back transaction reaches neither.
func TestRelaysShareTheOutbox(t *testing.T) {
	const leads, perLead = 60, 3
	ctx := context.Background()
	b := pg(t)
	broker, nc, js := testBroker(t, natsURL())
	var shippers []*JetStream
	for range 3 {
		r, s := newJetStreamRelay(t, b, nc, broker, RelayConfig{BatchSize: 7, PollInterval: 5 * time.Millisecond})
		shippers = append(shippers, s)
		run(t, r.Run)
	}
	p := newProjector(t, b, nc, broker, ProjectorConfig{Durable: "proj"})
	run(t, p.Run)

	ids := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, leads)
	for l := range leads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range perLead {
				ev := leadEvent(fmt.Sprintf("lead-%03d", l), t0.Add(time.Duration(k)*time.Second))
				ev.Name = []string{"lead_created", "lead_qualified", "lead_won"}[k]
				err := sqldb.InTx(ctx, b.DB, func(tx *sql.Tx) error { return Write(ctx, tx, b.Dialect, ev) })
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				ids[ev.ID] = true
				mu.Unlock()
			}
		}()
	}
	// And one that rolls back.
	tx, err := b.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(ctx, tx, b.Dialect, leadEvent("lead-rolled-back", t0)); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantEvents(t, b, 30*time.Second, ids)
	if n := streamMsgs(t, js, broker); n != leads*perLead {
		t.Fatalf("stream holds %d events, want %d", n, leads*perLead)
	}
	for i, s := range shippers {
		if d := s.duplicates.Load(); d != 0 {
			t.Fatalf("relay %d saw %d duplicate acks: a row was shipped twice", i, d)
		}
	}

	// Per lead, the stream order is the outbox order.
	want := map[string][]string{}
	rows, err := b.DB.Query(`SELECT ordering_key, event_id FROM rung_outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, id string
		rows.Scan(&k, &id)
		want[k] = append(want[k], id)
	}
	rows.Close()
	oc, err := js.OrderedConsumer(ctx, broker.Stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{broker.Subjects()}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for n := 0; n < leads*perLead; {
		batch, err := oc.Fetch(leads*perLead-n, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			got[m.Headers().Get(HeaderKey)] = append(got[m.Headers().Get(HeaderKey)], m.Headers().Get(jetstream.MsgIDHeader))
			n++
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
	}
	for k, w := range want {
		if strings.Join(got[k], ",") != strings.Join(w, ",") {
			t.Fatalf("lead %s reached the stream as %v, written as %v", k, got[k], w)
		}
	}
	var m bytes.Buffer
	p.WriteMetrics(&m)
	if !strings.Contains(m.String(), fmt.Sprintf("rung_events_projected_total %d\n", leads*perLead)) {
		t.Fatalf("projector metrics:\n%s", m.String())
	}
}

func TestEnsureStreamAddsSubjects(t *testing.T) {
	ctx := context.Background()
	broker, _, js := testBroker(t, natsURL())
	other := strings.TrimSuffix(broker.SubjectPrefix, ".events") + ".other"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: broker.Stream, Subjects: []string{other}, Duplicates: time.Minute}); err != nil {
		t.Fatal(err)
	}
	s, err := EnsureStream(ctx, js, broker)
	if err != nil {
		t.Fatal(err)
	}
	sc := s.CachedInfo().Config
	if len(sc.Subjects) != 2 || sc.Subjects[0] != other || sc.Subjects[1] != broker.Subjects() || sc.Duplicates != time.Minute {
		t.Fatalf("stream after ensure: subjects %v, duplicates %v", sc.Subjects, sc.Duplicates)
	}
	if _, err := EnsureStream(ctx, js, broker); err != nil {
		t.Fatalf("second ensure: %v", err)
	}
	bad := broker
	bad.SubjectPrefix = "a.>"
	if _, err := EnsureStream(ctx, js, bad); !errors.Is(err, ErrConfig) {
		t.Fatalf("wildcard prefix: %v, want ErrConfig", err)
	}
}

func TestDecodeMessage(t *testing.T) {
	ev := leadEvent("lead-1", t0)
	h := nats.Header{}
	h.Set(jetstream.MsgIDHeader, ev.ID)
	h.Set(HeaderName, ev.Name)
	h.Set(HeaderVersion, "1")
	h.Set(HeaderKey, ev.Key)
	h.Set(HeaderOccurredAt, t0.Format(time.RFC3339Nano))
	got, err := DecodeMessage(h, ev.Payload)
	if err != nil || got.ID != ev.ID || got.Key != ev.Key || !got.OccurredAt.Equal(t0) || got.Version != 1 {
		t.Fatalf("DecodeMessage = %+v, %v", got, err)
	}
	for _, tc := range []struct{ header, value, want string }{
		{HeaderVersion, "x", HeaderVersion},
		{HeaderOccurredAt, "yesterday", HeaderOccurredAt},
		{jetstream.MsgIDHeader, "", "event_id"},
		{HeaderKey, "", "ordering key"},
		{HeaderName, "Bad.Name", "name"},
	} {
		bad := nats.Header{}
		for k, v := range h {
			bad[k] = v
		}
		bad.Set(tc.header, tc.value)
		if _, err := DecodeMessage(bad, ev.Payload); !errors.Is(err, ErrBadMessage) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: %v, want ErrBadMessage naming %s", tc.header, tc.value, err, tc.want)
		}
	}
}

func FuzzDecodeMessage(f *testing.F) {
	ev := leadEvent("lead-1", t0)
	f.Add(ev.ID, ev.Name, "1", ev.Key, t0.Format(time.RFC3339Nano), []byte(ev.Payload))
	f.Add("", "", "", "", "", []byte("{"))
	f.Fuzz(func(t *testing.T, id, name, version, key, at string, data []byte) {
		h := nats.Header{}
		h.Set(jetstream.MsgIDHeader, id)
		h.Set(HeaderName, name)
		h.Set(HeaderVersion, version)
		h.Set(HeaderKey, key)
		h.Set(HeaderOccurredAt, at)
		got, err := DecodeMessage(h, data)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("decoded an invalid event: %v", err)
		}
		if _, err := Promote(got); err != nil && !errors.Is(err, ErrBadMessage) {
			t.Fatalf("promote: %v", err)
		}
	})
}
