package outbox

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func TestEventValidate(t *testing.T) {
	good := leadEvent("lead-1", t0)
	tests := []struct {
		name string
		edit func(*Event)
		want string
	}{
		{"short id", func(e *Event) { e.ID = "abc" }, "event_id"},
		{"id with a dot", func(e *Event) { e.ID = "abc.defgh" }, "event_id"},
		{"empty name", func(e *Event) { e.Name = "" }, "name"},
		{"upper-case name", func(e *Event) { e.Name = "LeadCreated" }, "name"},
		{"name with a dot", func(e *Event) { e.Name = "lead.created" }, "name"},
		{"negative version", func(e *Event) { e.Version = -1 }, "version"},
		{"no key", func(e *Event) { e.Key = "" }, "ordering key"},
		{"no time", func(e *Event) { e.OccurredAt = time.Time{} }, "occurred_at"},
		{"array payload", func(e *Event) { e.Payload = []byte(`[1]`) }, "payload"},
		{"broken payload", func(e *Event) { e.Payload = []byte(`{"a":`) }, "payload"},
		{"no payload", func(e *Event) { e.Payload = nil }, "payload"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := good
			tc.edit(&e)
			err := e.Validate()
			if !errors.Is(err, ErrInvalidEvent) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want ErrInvalidEvent naming %q", err, tc.want)
			}
		})
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("good event: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []RelayConfig{{BatchSize: -1}, {BatchSize: 20000}, {MaxAttempts: -2}, {RetryMin: time.Minute, RetryMax: time.Second}, {PruneBatch: -1}} {
		c.setDefaults()
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("relay config %+v: %v, want ErrConfig", c, err)
		}
	}
	for _, c := range []BrokerConfig{{Stream: "a.b"}, {SubjectPrefix: "a.*"}, {SubjectPrefix: "a..b"}, {SubjectPrefix: "a b"}, {SubjectPrefix: ".a"}} {
		c.setDefaults()
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("broker config %+v: %v, want ErrConfig", c, err)
		}
	}
	for _, c := range []ProjectorConfig{{Durable: "a.b"}, {AckWait: time.Millisecond}, {Batch: -1}} {
		c.setDefaults()
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("projector config %+v: %v, want ErrConfig", c, err)
		}
	}
}

func TestPromote(t *testing.T) {
	amount := 99.5
	tests := []struct {
		name    string
		payload string
		want    events.Event
	}{
		{"last touch utm", `{"landing_page":"/a","last_touch":{"source":"google","medium":"cpc","campaign":"x"},"variants":{"hero":"b","cta":"a"},"amount":99.5}`,
			events.Event{Source: "google", Medium: "cpc", Campaign: "x", LandingPage: "/a", Variant: "cta=a,hero=b", Amount: &amount}},
		{"referrer stands in", `{"last_touch":{"referrer":"https://News.example.com/x"}}`,
			events.Event{Source: "news.example.com", Medium: "referral"}},
		{"top-level wins", `{"source":"partner","variant":"v2","last_touch":{"source":"google"}}`,
			events.Event{Source: "partner", Variant: "v2"}},
		{"nothing to promote", `{"lead_id":"x"}`, events.Event{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := leadEvent("lead-1", t0)
			ev.Payload = json.RawMessage(tc.payload)
			got, err := Promote(ev)
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			if got.Source != w.Source || got.Medium != w.Medium || got.Campaign != w.Campaign || got.LandingPage != w.LandingPage ||
				got.Variant != w.Variant || (got.Amount == nil) != (w.Amount == nil) || got.Amount != nil && *got.Amount != *w.Amount {
				t.Fatalf("Promote = %+v, want %+v", got, w)
			}
			if got.ID != ev.ID || got.SubjectID != "lead-1" || got.Version != 1 || !got.OccurredAt.Equal(t0) {
				t.Fatalf("identity columns: %+v", got)
			}
		})
	}
	ev := leadEvent("lead-1", t0)
	ev.Payload = json.RawMessage(`{"amount":"ten"}`)
	if _, err := Promote(ev); !errors.Is(err, ErrBadMessage) {
		t.Fatalf("string amount: %v, want ErrBadMessage", err)
	}
}

// newDirectRelay is a relay projecting straight into the events table, with a clock the
// test moves.
func newDirectRelay(t *testing.T, b backend, cfg RelayConfig) (*Relay, *time.Time) {
	t.Helper()
	r, err := NewRelay(b.DB, b.Dialect, NewDirect(b.Dialect), cfg)
	if err != nil {
		t.Fatal(err)
	}
	clock := new(time.Time)
	*clock = time.Now()
	r.now = func() time.Time { return *clock }
	return r, clock
}

func drain(t *testing.T, r *Relay) int {
	t.Helper()
	total := 0
	for i := 0; i < 1000; i++ {
		n, err := r.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
	t.Fatal("relay did not drain the outbox in 1000 rounds")
	return 0
}

func TestWriteCommitsWithTheBusinessChange(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			if _, err := b.DB.Exec(`CREATE TABLE leads (id TEXT PRIMARY KEY, email TEXT NOT NULL)`); err != nil {
				t.Fatal(err)
			}
			create := func(lead string, commit bool) Event {
				ev := leadEvent(lead, t0)
				tx, err := b.DB.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(b.Dialect.Rebind(`INSERT INTO leads (id, email) VALUES (?, ?)`), lead, lead+"@example.com"); err != nil {
					t.Fatal(err)
				}
				if err := Write(ctx, tx, b.Dialect, ev); err != nil {
					t.Fatal(err)
				}
				if commit {
					err = tx.Commit()
				} else {
					err = tx.Rollback()
				}
				if err != nil {
					t.Fatal(err)
				}
				return ev
			}
			kept := create("lead-kept", true)
			create("lead-rolled-back", false)

			// A bad event fails before anything is written and leaves the transaction usable.
			tx, err := b.DB.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			bad := leadEvent("lead-bad", t0)
			bad.Payload = []byte("not json")
			if err := Write(ctx, tx, b.Dialect, bad); !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("bad payload: %v, want ErrInvalidEvent", err)
			}
			tx.Rollback()

			r, _ := newDirectRelay(t, b, RelayConfig{})
			if n := drain(t, r); n != 1 {
				t.Fatalf("relay shipped %d rows, want 1", n)
			}
			wantEvents(t, b, time.Second, map[string]bool{kept.ID: true})
			var leads int
			b.DB.QueryRow(`SELECT count(*) FROM leads`).Scan(&leads)
			if leads != 1 {
				t.Fatalf("%d leads, want 1", leads)
			}
			got, err := events.List(ctx, b.DB, b.Dialect, events.Filter{SubjectID: "lead-kept"})
			if err != nil || len(got) != 1 {
				t.Fatalf("list: %v %v", got, err)
			}
			g := got[0]
			if g.Name != "lead_created" || g.Source != "google" || g.Medium != "cpc" || g.Campaign != "spring" ||
				g.LandingPage != "/pricing" || g.Variant != "hero=b" || !g.OccurredAt.Equal(t0) {
				t.Fatalf("projected row: %+v", g)
			}
			if !jsonEqual(g.Payload, kept.Payload) {
				t.Fatalf("payload changed on the way: %s vs %s", g.Payload, kept.Payload)
			}
		})
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestDirectRelayConcurrentWriters(t *testing.T) {
	const writers, each = 8, 25
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			r, _ := newDirectRelay(t, b, RelayConfig{BatchSize: 16})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }() // exits when ctx is cancelled below
			var mu sync.Mutex
			ids := map[string]bool{}
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range each {
						ev := leadEvent(fmt.Sprintf("lead-%d-%d", w, i), t0)
						err := sqldb.InTx(ctx, b.DB, func(tx *sql.Tx) error { return Write(ctx, tx, b.Dialect, ev) })
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						ids[ev.ID] = true
						mu.Unlock()
						r.Notify()
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			wantEvents(t, b, 20*time.Second, ids)
			harness.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
				if d := depth(t, b.DB); d != 0 {
					return fmt.Errorf("outbox depth %d", d)
				}
				return nil
			})
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if _, err := r.Stats(context.Background()); err != nil {
				t.Fatal(err)
			}
			var m bytes.Buffer
			r.WriteMetrics(&m)
			for _, want := range []string{
				fmt.Sprintf("rung_outbox_published_total %d\n", writers*each),
				fmt.Sprintf("rung_events_projected_total %d\n", writers*each),
				"rung_outbox_depth 0\n", "rung_outbox_oldest_unpublished_age_seconds 0\n", "rung_outbox_dead_lettered_total 0\n",
			} {
				if !strings.Contains(m.String(), want) {
					t.Errorf("metrics lack %q:\n%s", want, m.String())
				}
			}
		})
	}
}

// A row that cannot be projected is retried with backoff, holds back the later events of
// its key (order per key), then moves to the dead-letter table and lets them through.
func TestRetryThenDeadLetterKeepsKeyOrder(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			// Another backend's writer put a payload that is JSON but no object; Write
			// refuses that, so insert it the way a foreign writer would.
			poison := leadEvent("lead-p", t0)
			if _, err := b.DB.Exec(b.Dialect.Rebind(`INSERT INTO rung_outbox (event_id, name, version, ordering_key, occurred_at, payload) VALUES (?, ?, 1, ?, ?, ?)`),
				poison.ID, poison.Name, poison.Key, b.Dialect.Time(t0), `[1, 2]`); err != nil {
				t.Fatal(err)
			}
			next := leadEvent("lead-p", t0.Add(time.Second)) // same key, must wait
			other := leadEvent("lead-q", t0)                 // other key, must not wait
			writeEvents(t, b, next, other)

			r, clock := newDirectRelay(t, b, RelayConfig{MaxAttempts: 3, RetryMin: time.Second, RetryMax: 10 * time.Second})
			if n := drain(t, r); n != 1 {
				t.Fatalf("first pass shipped %d, want only the other key's event", n)
			}
			var attempts int
			var lastErr string
			b.DB.QueryRow(b.Dialect.Rebind(`SELECT attempts, last_error FROM rung_outbox WHERE event_id = ?`), poison.ID).Scan(&attempts, &lastErr)
			if attempts != 1 || !strings.Contains(lastErr, "payload") {
				t.Fatalf("poison row: attempts %d, last_error %q", attempts, lastErr)
			}
			if n := drain(t, r); n != 0 {
				t.Fatalf("retried before its backoff: shipped %d", n)
			}
			for i := 0; i < 2; i++ {
				*clock = clock.Add(time.Minute)
				drain(t, r)
			}
			if n := drain(t, r); n != 1 {
				t.Fatalf("after the dead letter the held-back event must ship: shipped %d", n)
			}
			var dead int
			b.DB.QueryRow(`SELECT count(*) FROM rung_outbox_dead`).Scan(&dead)
			if dead != 1 {
				t.Fatalf("%d dead-lettered rows, want 1", dead)
			}
			wantEvents(t, b, time.Second, map[string]bool{next.ID: true, other.ID: true})
			s, err := r.Stats(ctx)
			if err != nil || s.Depth != 0 || s.DeadLettered != 1 {
				t.Fatalf("stats %+v, %v", s, err)
			}
			var m bytes.Buffer
			r.WriteMetrics(&m)
			for _, want := range []string{"rung_outbox_retried_total 2\n", "rung_outbox_dead_lettered_total 1\n"} {
				if !strings.Contains(m.String(), want) {
					t.Errorf("metrics lack %q:\n%s", want, m.String())
				}
			}
		})
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	for _, b := range backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			r, clock := newDirectRelay(t, b, RelayConfig{Retention: time.Hour, PruneBatch: 2})
			var evs []Event
			for i := range 5 {
				evs = append(evs, leadEvent(fmt.Sprintf("lead-%d", i), t0))
			}
			writeEvents(t, b, evs...)
			drain(t, r)
			pending := leadEvent("lead-pending", t0)
			writeEvents(t, b, pending)
			if n, err := r.Prune(ctx); err != nil || n != 0 {
				t.Fatalf("prune inside retention: %d, %v", n, err)
			}
			*clock = clock.Add(2 * time.Hour)
			if n, err := r.Prune(ctx); err != nil || n != 5 {
				t.Fatalf("prune after retention: %d, %v; want 5", n, err)
			}
			var left int
			b.DB.QueryRow(`SELECT count(*) FROM rung_outbox`).Scan(&left)
			if left != 1 {
				t.Fatalf("%d rows left, want the unpublished one", left)
			}
			if n, _ := countEvents(t, b.DB, b.Dialect); n != 5 {
				t.Fatalf("pruning the outbox touched the events table: %d events", n)
			}
			s, err := r.Stats(ctx)
			if err != nil || s.Depth != 1 || s.OldestAge < 119*time.Minute {
				t.Fatalf("stats %+v, %v: want depth 1, oldest ≥ 1h59m", s, err)
			}
		})
	}
}

// Thirty-two transactions take their ids, then commit in the reverse order while the
// relay runs, each commit waiting until the relay has shipped the one before. A relay
// that kept a watermark on max(id) would skip all 31 late ones; this one ships all 32.
func TestOutOfOrderCommitsAreNotSkipped(t *testing.T) {
	const n = 32
	b := pg(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, _ := newDirectRelay(t, b, RelayConfig{PollInterval: 5 * time.Millisecond})
	r.now = time.Now
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }() // exits when ctx is cancelled

	type pending struct {
		seq    int64
		id     string
		commit chan struct{}
	}
	ready := make(chan pending, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := leadEvent(fmt.Sprintf("lead-%02d", i), t0)
			tx, err := b.DB.BeginTx(ctx, nil)
			if err != nil {
				errs <- err
				return
			}
			defer tx.Rollback()
			if err := Write(ctx, tx, b.Dialect, ev); err != nil {
				errs <- err
				return
			}
			p := pending{id: ev.ID, commit: make(chan struct{})}
			if err := tx.QueryRow(`SELECT id FROM rung_outbox WHERE event_id = $1`, ev.ID).Scan(&p.seq); err != nil {
				errs <- err
				return
			}
			ready <- p
			<-p.commit
			errs <- tx.Commit()
		}()
	}
	var all []pending
	for range n {
		all = append(all, <-ready)
	}
	// Highest id first.
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			if all[j].seq > all[i].seq {
				all[i], all[j] = all[j], all[i]
			}
		}
	}
	ids := map[string]bool{}
	for k, p := range all {
		close(p.commit)
		ids[p.id] = true
		r.Notify()
		harness.CheckFor(t, 10*time.Second, 5*time.Millisecond, func() error {
			if got, _ := countEvents(t, b.DB, b.Dialect); got != int64(k+1) {
				return fmt.Errorf("after %d commits (highest id first) the events table holds %d", k+1, got)
			}
			return nil
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	wantEvents(t, b, time.Second, ids)
	cancel()
	<-done
}
