package outbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rungdev/rung/internal/harness"
)

// child starts this test binary as a relay or projector process.
func child(t *testing.T, role string, b backend, natsURL string, broker BrokerConfig, batch int, fault string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, "STITCH_DSN="+b.dsn, "STITCH_NATS="+natsURL,
		"STITCH_STREAM="+broker.Stream, "STITCH_PREFIX="+broker.SubjectPrefix,
		"STITCH_BATCH="+strconv.Itoa(batch), "STITCH_FAULT="+fault)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s child: %v", role, err)
	}
	return cmd, lines(bufio.NewScanner(out))
}

func field(line, key string) int64 {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}

// The relay is SIGKILLed over and over: by itself right after publishing and before
// marking (the first child always, later ones at random), and by the test after a random
// number of rounds, wherever it then is. Restarted each time, it still lands every
// event exactly once: the stream's duplicate window absorbs the re-publishes, which the
// test observes as duplicate acks.
func TestRelaySIGKILLed(t *testing.T) {
	const n, batch = 300, 20
	b := pg(t)
	broker, nc, js := testBroker(t, natsURL())
	ids := map[string]bool{}
	var evs []Event
	for i := range n {
		ev := leadEvent(fmt.Sprintf("lead-%03d", i), t0)
		evs = append(evs, ev)
		ids[ev.ID] = true
	}
	writeEvents(t, b, evs...)
	p := newProjector(t, b, nc, broker, ProjectorConfig{Durable: "proj"})
	run(t, p.Run)

	var kills, selfKills, dups int64
	for round := 0; depth(t, b.DB) > 0; round++ {
		if round == 80 {
			t.Fatalf("outbox not drained after %d relay processes (depth %d)", round, depth(t, b.DB))
		}
		fault := "0.25"
		if round == 0 {
			fault = "first"
		}
		cmd, out := child(t, "relay", b, natsURL(), broker, batch, fault)
		killAfter, rounds, maxDups := 1+rand.IntN(4), 0, int64(0)
		for line := range out {
			switch {
			case strings.HasPrefix(line, "shipped"):
				maxDups = max(maxDups, field(line, "dups"))
			case strings.HasPrefix(line, "fault"):
				selfKills++
			case strings.HasPrefix(line, "round"):
				rounds++
				if rounds == killAfter || field(line, "n") == 0 {
					cmd.Process.Signal(syscall.SIGKILL)
					kills++
				}
			}
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("relay child ended with %v, not by SIGKILL", err)
		}
		dups += maxDups
	}
	wantEvents(t, b, 30*time.Second, ids)
	if got := streamMsgs(t, js, broker); got != n {
		t.Fatalf("stream holds %d events, want %d (all re-publishes inside the duplicate window)", got, n)
	}
	t.Logf("%d relay processes SIGKILLed (%d of them between publish and mark); %d duplicate publishes absorbed by the stream; events table: exactly %d", kills+selfKills, selfKills, dups, n)
	if selfKills == 0 || dups == 0 {
		t.Fatalf("the fault did not fire: %d kills between publish and mark, %d duplicate acks", selfKills, dups)
	}
}

// The relay publishes a batch and dies before marking it; it stays down past the stream's
// duplicate window, so when it comes back its re-publishes are stored again. The events
// table still holds each event once.
func TestRelayDownPastDuplicateWindow(t *testing.T) {
	const n = 40
	ctx := context.Background()
	b := pg(t)
	broker, nc, js := testBroker(t, natsURL())
	probe := strings.TrimSuffix(broker.SubjectPrefix, ".events") + ".probe"
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: broker.Stream, Subjects: []string{broker.Subjects(), probe},
		Duplicates: 500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	var evs []Event
	for i := range n {
		ev := leadEvent(fmt.Sprintf("lead-%03d", i), t0)
		evs = append(evs, ev)
		ids[ev.ID] = true
	}
	writeEvents(t, b, evs...)

	crashed := errors.New("relay crashed between publish and mark")
	r, _ := newJetStreamRelay(t, b, nc, broker, RelayConfig{BatchSize: n})
	r.afterShip = func([]Message) error { return crashed } // the claim rolls back, as on a crash
	if _, err := r.RunOnce(ctx); !errors.Is(err, crashed) {
		t.Fatalf("first run: %v", err)
	}
	if got := streamMsgs(t, js, broker); got != n {
		t.Fatalf("stream holds %d after the crashed run, want %d", got, n)
	}
	// Wait out the duplicate window: a probe published after the batch stops being a
	// duplicate once the window has passed for it, and so for the batch before it.
	if _, err := js.Publish(ctx, probe, []byte("probe"), jetstream.WithMsgID("probe")); err != nil {
		t.Fatal(err)
	}
	harness.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		ack, err := js.Publish(ctx, probe, []byte("probe"), jetstream.WithMsgID("probe"))
		if err != nil {
			return err
		}
		if ack.Duplicate {
			return errors.New("still inside the duplicate window")
		}
		return nil
	})

	r2, s2 := newJetStreamRelay(t, b, nc, broker, RelayConfig{BatchSize: n})
	if got, err := r2.RunOnce(ctx); err != nil || got != n {
		t.Fatalf("second relay shipped %d, %v", got, err)
	}
	if got := streamMsgs(t, js, broker); got != 2*n {
		t.Fatalf("stream holds %d, want %d: the re-publishes should be past the window", got, 2*n)
	}
	if d := s2.duplicates.Load(); d != 0 {
		t.Fatalf("%d duplicate acks past the window", d)
	}
	p := newProjector(t, b, nc, broker, ProjectorConfig{Durable: "proj"})
	run(t, p.Run)
	wantEvents(t, b, 20*time.Second, ids)
	harness.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if a := p.absorbed.Load(); a != n {
			return fmt.Errorf("projector absorbed %d duplicates, want %d", a, n)
		}
		return nil
	})
}

// The projector writes a batch and is SIGKILLed before it acks. The server redelivers
// after the ack wait; the next projector sees the redeliveries and writes nothing twice.
func TestProjectorSIGKILLedBeforeAck(t *testing.T) {
	const n = 50
	ctx := context.Background()
	b := pg(t)
	broker, nc, _ := testBroker(t, natsURL())
	ids := map[string]bool{}
	var evs []Event
	for i := range n {
		ev := leadEvent(fmt.Sprintf("lead-%03d", i), t0)
		evs = append(evs, ev)
		ids[ev.ID] = true
	}
	writeEvents(t, b, evs...)
	r, _ := newJetStreamRelay(t, b, nc, broker, RelayConfig{BatchSize: n})
	if got, err := r.RunOnce(ctx); err != nil || got != n {
		t.Fatalf("relay shipped %d, %v", got, err)
	}
	// The child makes the durable consumer "proj" with a 1 s ack wait.
	cmd, out := child(t, "projector", b, natsURL(), broker, n, "after-commit")
	var committed int64
	fired := false
	for line := range out {
		if strings.HasPrefix(line, "committed") {
			committed += field(line, "n")
		}
		fired = fired || strings.HasPrefix(line, "fault")
	}
	cmd.Wait()
	if !fired || committed == 0 {
		t.Fatalf("projector child did not die after writing (committed %d)", committed)
	}
	if total, _ := countEvents(t, b.DB, b.Dialect); total != committed {
		t.Fatalf("events table holds %d after the kill, want the %d committed", total, committed)
	}
	p := newProjector(t, b, nc, broker, ProjectorConfig{Durable: "proj", AckWait: time.Second})
	run(t, p.Run)
	wantEvents(t, b, 20*time.Second, ids)
	harness.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if rd, a := p.redelivered.Load(), p.absorbed.Load(); rd < committed || a < committed {
			return fmt.Errorf("redeliveries %d, absorbed %d; want ≥ %d each", rd, a, committed)
		}
		return nil
	})
	t.Logf("projector killed after committing %d events unacked; %d redelivered and absorbed; events table: exactly %d",
		committed, p.redelivered.Load(), n)
}

// NATS goes away for 20 s while leads keep coming: the outbox grows, nothing is lost or
// dead-lettered, and when NATS is back it drains; the events table holds each event once.
func TestNATSOutage(t *testing.T) {
	const outage = 20 * time.Second
	ctx := context.Background()
	b := pg(t)
	srv := startOwnNATS(t)
	nc, err := Connect(srv.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	broker := BrokerConfig{Stream: "OUTAGE", SubjectPrefix: "outage.events"}
	r, _ := newJetStreamRelay(t, b, nc, broker, RelayConfig{BatchSize: 50, PollInterval: 10 * time.Millisecond,
		OutageMax: 500 * time.Millisecond})
	run(t, r.Run)
	p := newProjector(t, b, nc, broker, ProjectorConfig{Durable: "proj"})
	run(t, p.Run)

	ids := map[string]bool{}
	next := 0
	write := func(k int) {
		var evs []Event
		for range k {
			ev := leadEvent(fmt.Sprintf("lead-%04d", next), t0)
			next++
			ids[ev.ID] = true
			evs = append(evs, ev)
		}
		writeEvents(t, b, evs...)
		r.Notify()
	}
	write(50)
	wantEvents(t, b, 20*time.Second, ids)

	srv.stop()
	down := time.Now()
	var peak int64
	tick := time.NewTicker(500 * time.Millisecond) // paces the writers; nothing waits on it
	for time.Since(down) < outage {
		<-tick.C
		write(5)
		peak = max(peak, depth(t, b.DB))
	}
	tick.Stop()
	written := int64(len(ids) - 50)
	if peak < written-5 {
		t.Fatalf("outbox depth peaked at %d during the outage, %d written: it should have grown", peak, written)
	}
	srv.start()
	harness.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if d := depth(t, b.DB); d != 0 {
			return fmt.Errorf("outbox depth %d after NATS came back", d)
		}
		return nil
	})
	wantEvents(t, b, 30*time.Second, ids)
	s, err := r.Stats(ctx)
	if err != nil || s.DeadLettered != 0 {
		t.Fatalf("stats %+v, %v: an outage must not dead-letter", s, err)
	}
	if r.unavailable.Load() == 0 {
		t.Fatal("the relay never saw the broker unavailable")
	}
	t.Logf("outage %v: outbox grew to %d, drained; %d relay rounds backed off; events table: exactly %d",
		outage, peak, r.unavailable.Load(), len(ids))
}
