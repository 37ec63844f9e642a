package stitch

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/outbox"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
)

func natsURL() string {
	if v := os.Getenv("RUNG_TEST_NATS"); v != "" {
		return v
	}
	return nats.DefaultURL
}

func testBroker(t *testing.T) (outbox.BrokerConfig, *nats.Conn) {
	t.Helper()
	sfx := sqltest.Suffix()
	cfg := outbox.BrokerConfig{Stream: "RUNG_T_" + sfx, SubjectPrefix: "rung_t_" + sfx + ".events"}
	nc, err := nats.Connect(natsURL())
	if err != nil {
		t.Fatalf("nats at %s (set RUNG_TEST_NATS): %v", natsURL(), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, cfg.Stream); err != nil && err != jetstream.ErrStreamNotFound {
			t.Errorf("delete stream %s: %v", cfg.Stream, err)
		}
		nc.Close()
	})
	return cfg, nc
}

func run(t *testing.T, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }() // stopped and awaited at cleanup
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stopped with %v", err)
		}
	})
}

func anon(i int) string { return fmt.Sprintf("visitor-%04d", i) }

func visit(i int, at time.Duration, source, campaign string) schemas.Signal {
	s := pv(at, "https://shop.example/landing-"+fmt.Sprint(i%3)+"?utm_source="+source, "/landing-"+fmt.Sprint(i%3), "", source, "cpc", campaign)
	s.AnonymousID = anon(i)
	return s
}

// N visitors arrive from campaigns, are exposed to an experiment and convert at once, on
// real PostgreSQL, NATS JetStream and the embedded sink. Each lead and its lead_created
// commit in one transaction; one more transaction rolls back. Then every visitor comes
// back through a new campaign and every lead is edited. The events table holds exactly
// the N committed events, each with the attribution its visitor had when the lead was made.
func TestLeadsKeepTheirAttribution(t *testing.T) {
	const n = 40
	ctx := context.Background()
	tel := openSink(t)
	b := sqltest.Postgres(t)
	for _, m := range []func(context.Context, *sql.DB, sqldb.Dialect) error{outbox.Migrate,
		func(ctx context.Context, db *sql.DB, d sqldb.Dialect) error { return events.Migrate(ctx, db, d) }} {
		if err := m(ctx, b.DB, b.Dialect); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.DB.Exec(`CREATE TABLE leads (id TEXT PRIMARY KEY, email TEXT NOT NULL, anonymous_id TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	broker, nc := testBroker(t)
	js, err := outbox.NewJetStream(nc, broker)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := outbox.NewRelay(b.DB, b.Dialect, js, outbox.RelayConfig{BatchSize: 16, PollInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, relay.Run)
	proj, err := outbox.NewProjector(b.DB, b.Dialect, nc, broker, outbox.ProjectorConfig{Durable: "proj", FetchWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, proj.Run)

	for i := range n {
		e := exposure(time.Second, "hero", []string{"a", "b"}[i%2])
		e.AnonymousID = anon(i)
		store(t, tel, visit(i, 0, "google", fmt.Sprintf("spring-%d", i)), e)
	}
	lookup, err := NewLookup(tel, LookupConfig{TTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	reg := registry(t)
	createLead := func(i int, commit bool) (string, error) {
		a, err := lookup.Attribution(ctx, anon(i))
		if err != nil {
			return "", err
		}
		leadID := fmt.Sprintf("lead-%04d", i)
		l := NewLeadCreated(leadID, a, time.Now())
		tx, err := b.DB.BeginTx(ctx, nil)
		if err != nil {
			return "", err
		}
		defer tx.Rollback()
		if _, err := tx.Exec(`INSERT INTO leads (id, email, anonymous_id) VALUES ($1, $2, $3)`, leadID, leadID+"@example.com", anon(i)); err != nil {
			return "", err
		}
		if err := WriteLeadCreated(ctx, tx, b.Dialect, reg, l); err != nil {
			return "", err
		}
		if !commit {
			return l.EventID, tx.Rollback()
		}
		return l.EventID, tx.Commit()
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]int{}
	errs := make(chan error, n+1)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := createLead(i, true)
			if err != nil {
				errs <- err
				return
			}
			relay.Notify()
			mu.Lock()
			ids[id] = i
			mu.Unlock()
		}()
	}
	rolledBack, err := createLead(n, false)
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// The visitors return through a new campaign; the leads are edited.
	for i := range n {
		store(t, tel, visit(i, time.Hour, "newsletter", "summer"))
	}
	if _, err := b.DB.Exec(`UPDATE leads SET email = 'changed@example.com'`); err != nil {
		t.Fatal(err)
	}
	if a, _ := lookup.Attribution(ctx, anon(0)); a.LastTouch.Source != "newsletter" {
		t.Fatalf("the sink should now say newsletter: %+v", a)
	}

	harness.CheckFor(t, 30*time.Second, 20*time.Millisecond, func() error {
		c, err := events.Count(ctx, b.DB, b.Dialect, events.Filter{Name: EventLeadCreated})
		if err != nil || c != n {
			return fmt.Errorf("events table holds %d lead_created (%v), want %d", c, err, n)
		}
		return nil
	})
	stored, err := events.List(ctx, b.DB, b.Dialect, events.Filter{Name: EventLeadCreated})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range stored {
		i, ok := ids[e.ID]
		if !ok || e.ID == rolledBack {
			t.Fatalf("events table holds %s, which no committed transaction made", e.ID)
		}
		delete(ids, e.ID)
		var p LeadCreated
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatal(err)
		}
		wantCampaign := fmt.Sprintf("spring-%d", i)
		if e.SubjectID != fmt.Sprintf("lead-%04d", i) || e.Source != "google" || e.Campaign != wantCampaign ||
			e.LandingPage != fmt.Sprintf("/landing-%d", i%3) || e.Variant != "hero="+[]string{"a", "b"}[i%2] ||
			p.AnonymousID != anon(i) || p.LastTouch.Source != "google" || p.FirstTouch.Campaign != wantCampaign {
			t.Fatalf("lead %d: event %+v payload %s: attribution is not the one at lead time", i, e, e.Payload)
		}
		if err := reg.ValidateEvent("lead_created", e.Payload); err != nil {
			t.Fatalf("stored payload fails the schema: %v", err)
		}
	}
	if len(ids) != 0 {
		t.Fatalf("%d committed leads have no event", len(ids))
	}
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	for _, b := range sqltest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			if err := events.Migrate(ctx, b.DB, b.Dialect); err != nil {
				t.Fatal(err)
			}
			insert := func(name string, at time.Time) {
				l := NewLeadCreated("lead-x", Attribution{}, at)
				ev, _ := l.Event(registry(t))
				row, err := outbox.Promote(ev)
				if err != nil {
					t.Fatal(err)
				}
				row.Name = name
				if _, err := events.Insert(ctx, b.DB, b.Dialect, row); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 10 {
				insert(EventLeadCreated, t0.Add(time.Duration(i)*time.Hour))
			}
			insert(EventLeadCreated, t0.Add(-time.Second)) // before the period
			insert(EventLeadCreated, t0.Add(24*time.Hour)) // at its end: excluded
			insert("deal_closed", t0.Add(time.Hour))       // another event
			r, err := Reconcile(ctx, b.DB, b.Dialect, t0, t0.Add(24*time.Hour), 7)
			if err != nil {
				t.Fatal(err)
			}
			if r.LeadsCreated != 10 || r.FormSubmitted != 7 || r.Undercount != 3 || r.UndercountRatio != 0.3 {
				t.Fatalf("reconciliation %+v", r)
			}
			if s := r.String(); s != "leads 2026-03-10T12:00:00Z – 2026-03-11T12:00:00Z: 10 lead_created (durable), 7 form_submitted (telemetry): telemetry undercount 3 (30.0%)" {
				t.Fatalf("report %q", s)
			}
			if _, err := Reconcile(ctx, b.DB, b.Dialect, t0, t0, 1); err == nil {
				t.Fatal("empty period accepted")
			}
			if _, err := Reconcile(ctx, b.DB, b.Dialect, t0, t0.Add(time.Hour), -1); err == nil {
				t.Fatal("negative count accepted")
			}
		})
	}
}
