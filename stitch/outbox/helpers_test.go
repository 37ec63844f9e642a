package outbox

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/sqldb"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(childMain(role))
	}
	goleak.VerifyTestMain(m,
		// database/sql and modernc keep no goroutines after Close; pgx's stdlib pool and
		// nats.go's reconnect machinery are all closed by the tests. The runtime's own:
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

func natsURL() string {
	if v := os.Getenv("RUNG_TEST_NATS"); v != "" {
		return v
	}
	return nats.DefaultURL
}

// backend is one business database for a test, migrated for the outbox and the events table.
type backend struct {
	sqltest.Backend
	dsn string // for a child process; PostgreSQL only
}

func migrated(t *testing.T, b sqltest.Backend) backend {
	t.Helper()
	ctx := context.Background()
	if err := Migrate(ctx, b.DB, b.Dialect); err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, b.DB, b.Dialect); err != nil {
		t.Fatalf("second migrate must be a no-op: %v", err)
	}
	if err := events.Migrate(ctx, b.DB, b.Dialect); err != nil {
		t.Fatal(err)
	}
	out := backend{Backend: b}
	if b.Dialect == sqldb.Postgres {
		out.dsn = schemaDSN(t, b.Schema)
	}
	return out
}

// schemaDSN is the test server's URL with the search_path of schema, for a handle of
// another process's own.
func schemaDSN(t *testing.T, schema string) string {
	t.Helper()
	u, err := url.Parse(sqltest.PostgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func backends(t *testing.T) []backend {
	t.Helper()
	return []backend{migrated(t, sqltest.Postgres(t)), migrated(t, sqltest.SQLite(t))}
}

func pg(t *testing.T) backend {
	t.Helper()
	return migrated(t, sqltest.Postgres(t))
}

// leadEvent is a lead_created-shaped event for lead i.
func leadEvent(lead string, at time.Time) Event {
	id := uuid.Must(uuid.NewV7()).String()
	p, _ := json.Marshal(map[string]any{
		"event_id": id, "occurred_at": at.Format(time.RFC3339Nano), "lead_id": lead,
		"anonymous_id": "anon-" + lead, "landing_page": "/pricing",
		"last_touch": map[string]string{"source": "google", "medium": "cpc", "campaign": "spring"},
		"variants":   map[string]string{"hero": "b"},
	})
	return Event{ID: id, Name: "lead_created", Version: 1, Key: lead, OccurredAt: at, Payload: p}
}

// writeEvents commits one transaction per event, the way a business app does.
func writeEvents(t *testing.T, b backend, evs ...Event) {
	t.Helper()
	ctx := context.Background()
	for _, ev := range evs {
		err := sqldb.InTx(ctx, b.DB, func(tx *sql.Tx) error { return Write(ctx, tx, b.Dialect, ev) })
		if err != nil {
			t.Fatal(err)
		}
	}
}

func countEvents(t *testing.T, db *sql.DB, d sqldb.Dialect) (total, distinct int64) {
	t.Helper()
	if err := db.QueryRow(`SELECT count(*), count(DISTINCT event_id) FROM events`).Scan(&total, &distinct); err != nil {
		t.Fatal(err)
	}
	return total, distinct
}

func depth(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(`SELECT count(*) FROM rung_outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// wantEvents polls until the events table holds as many rows as ids, then checks by
// event_id with harness's check, as every fault test ends: each lead committed to the
// outbox (ids: acknowledged, to its writer) is in the table once, and nothing else is.
func wantEvents(t *testing.T, b backend, total time.Duration, ids map[string]bool) {
	t.Helper()
	harness.CheckFor(t, total, 20*time.Millisecond, func() error {
		n, d := countEvents(t, b.DB, b.Dialect)
		if n != int64(len(ids)) || d != n {
			return fmt.Errorf("events table holds %d rows (%d distinct), want %d", n, d, len(ids))
		}
		return nil
	})
	rows, err := b.DB.Query(`SELECT event_id FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	stored := map[string]int{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	l := harness.NewLedger()
	for id := range ids {
		l.Record(harness.Acked, id)
	}
	l.Check(t, harness.Outcome{Stored: stored}) // the outbox path drops nothing
}

// testBroker is a stream and subject prefix of the test's own on a nats-server,
// deleted when the test ends.
func testBroker(t testing.TB, url string) (BrokerConfig, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	sfx := sqltest.Suffix()
	cfg := BrokerConfig{Stream: "RUNG_T_" + sfx, SubjectPrefix: "rung_t_" + sfx + ".events"}
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("nats at %s (set RUNG_TEST_NATS): %v", url, err)
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
	return cfg, nc, js
}

func streamMsgs(t *testing.T, js jetstream.JetStream, cfg BrokerConfig) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, cfg.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(cfg.Subjects()))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// natsServer is a nats-server process of the test's own, to stop and start at will.
type natsServer struct {
	t      *testing.T
	port   int
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
}

func startOwnNATS(t *testing.T) *natsServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &natsServer{t: t, port: port, dir: filepath.Join(t.TempDir(), "js")}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

func (s *natsServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("/usr/sbin/nats-server", "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", s.dir)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	s.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(s.cmd, s.exited)
	harness.CheckFor(s.t, 10*time.Second, 20*time.Millisecond, func() error {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port))
		if err != nil {
			return fmt.Errorf("own nats-server on %d: %w", s.port, err)
		}
		c.Close()
		return nil
	})
}

func (s *natsServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// lines feeds a child's stdout to a channel, closed at EOF. The goroutine exits at EOF,
// which comes when the child dies.
func lines(r *bufio.Scanner) <-chan string {
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		for r.Scan() {
			ch <- r.Text()
		}
	}()
	return ch
}
