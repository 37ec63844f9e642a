package outbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/rungdev/rung/stitch/sqldb"
)

// The fault tests run the relay and the projector as child processes (this test binary,
// re-executed with childEnv set) so that they can be killed with SIGKILL for real.
const childEnv = "STITCH_OUTBOX_CHILD"

// childMain runs one role until it is killed; it reports on stdout, one line per step:
//
//	shipped n=<batch> dups=<duplicate acks so far>   (relay, after publishing, before marking)
//	round n=<published> err=<error>                  (relay, after a round)
//	committed n=<batch>                              (projector, after writing, before acking)
//	fault <where>                                    (just before the child kills itself)
func childMain(role string) int {
	ctx := context.Background()
	db, err := sqldb.Open(ctx, sqldb.Postgres, os.Getenv("STITCH_DSN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	nc, err := Connect(os.Getenv("STITCH_NATS"), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	broker := BrokerConfig{Stream: os.Getenv("STITCH_STREAM"), SubjectPrefix: os.Getenv("STITCH_PREFIX")}
	batch, _ := strconv.Atoi(os.Getenv("STITCH_BATCH"))
	fault := os.Getenv("STITCH_FAULT") // "first", a probability, or ""
	prob, _ := strconv.ParseFloat(fault, 64)
	die := func(where string) {
		fmt.Printf("fault %s\n", where)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	switch role {
	case "relay":
		js, err := NewJetStream(nc, broker)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		r, err := NewRelay(db, sqldb.Postgres, js, RelayConfig{BatchSize: batch, RetryMin: 10 * time.Millisecond})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		r.afterShip = func(b []Message) error {
			fmt.Printf("shipped n=%d dups=%d\n", len(b), js.duplicates.Load())
			if fault == "first" || rand.Float64() < prob {
				die("after-ship")
			}
			return nil
		}
		for {
			n, err := r.RunOnce(ctx)
			fmt.Printf("round n=%d err=%v\n", n, err)
			if n == 0 {
				time.Sleep(20 * time.Millisecond) // the child's own idle poll, not test synchronisation
			}
		}
	case "projector":
		p, err := NewProjector(db, sqldb.Postgres, nc, broker, ProjectorConfig{Durable: "proj", Batch: batch, AckWait: time.Second, FetchWait: 100 * time.Millisecond})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		p.afterCommit = func(n int) {
			fmt.Printf("committed n=%d\n", n)
			if fault != "" {
				die("after-commit")
			}
		}
		p.Run(ctx)
	}
	return 3
}
