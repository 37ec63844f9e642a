package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink/clickhouse"
	"github.com/rungdev/rung/sink/sqlite"
)

// genSignal is one generated signal and what the server must make of it.
type genSignal struct {
	id    string
	valid bool
	body  map[string]any
}

// generate makes n numbered signals from seed, about one in eight invalid in a way the
// schema catches.
func generate(seed uint64, n int) []genSignal {
	r := rand.New(rand.NewPCG(seed, seed))
	out := make([]genSignal, n)
	for i := range out {
		id := fmt.Sprintf("e2e-%08d", i)
		visitor := fmt.Sprintf("visitor-%04d", r.IntN(200))
		b := map[string]any{"site": "e2e.example", "anonymous_id": visitor, "event_id": id}
		switch r.IntN(3) {
		case 0:
			b["type"], b["url"] = "pageview", fmt.Sprintf("https://e2e.example/p%d?utm_source=s%d", r.IntN(5), r.IntN(3))
		case 1:
			b["type"], b["name"] = "event", "form_submitted"
		default:
			b["type"], b["experiment"], b["variant"] = "exposure", "hero", []string{"control", "b"}[r.IntN(2)]
		}
		valid := r.IntN(8) != 0
		if !valid {
			switch r.IntN(4) {
			case 0:
				delete(b, "anonymous_id")
			case 1:
				b["site"] = 42
			case 2:
				b["type"] = "click"
			default:
				b["unknown"] = true
			}
		}
		out[i] = genSignal{id: id, valid: valid, body: b}
	}
	return out
}

type collectAnswer struct {
	Accepted int `json:"accepted"`
	Rejected int `json:"rejected"`
	Errors   []struct {
		Index   int    `json:"index"`
		Pointer string `json:"pointer"`
		Reason  string `json:"reason"`
	} `json:"errors"`
	Error string `json:"error"`
}

// postAll posts the signals, singly and in batches of random size, from several
// goroutines, spread over the servers given, records each answer in l, and returns the
// event_ids the servers said they accepted.
func postAll(t *testing.T, l *harness.Ledger, sigs []genSignal, seed uint64, to ...*proc) map[string]bool {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	type request struct {
		sigs []genSignal
		bare bool  // one signal as an object, not in an array
		to   *proc // the server it goes to
	}
	var reqs []request
	for i := 0; i < len(sigs); {
		n := 1
		if r.IntN(2) == 0 {
			n = 2 + r.IntN(49)
		}
		n = min(n, len(sigs)-i)
		reqs = append(reqs, request{sigs[i : i+n], n == 1 && r.IntN(2) == 0, to[len(reqs)%len(to)]})
		i += n
	}
	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		wg       sync.WaitGroup
		work     = make(chan request)
	)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rq := range work {
				req := rq.sigs
				var body []byte
				if rq.bare {
					body, _ = json.Marshal(req[0].body)
				} else {
					list := make([]any, len(req))
					for i := range req {
						list[i] = req[i].body
					}
					body, _ = json.Marshal(list)
				}
				ct := []string{"application/json", "text/plain;charset=UTF-8"}[len(body)%2]
				ids := make([]string, len(req))
				for i := range req {
					ids[i] = req[i].id
				}
				resp, err := client.Post(rq.to.url("/collect"), ct, bytes.NewReader(body))
				if err != nil {
					l.Collect(ids, 0, nil, err)
					t.Errorf("post: %v", err)
					continue
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				l.Collect(ids, resp.StatusCode, raw, nil)
				var ans collectAnswer
				if err := json.Unmarshal(raw, &ans); err != nil {
					t.Errorf("answer %q: %v", raw, err)
					continue
				}
				rejected := map[int]bool{}
				for _, e := range ans.Errors {
					if e.Reason == "" {
						t.Errorf("rejection without a reason: %s", raw)
					}
					rejected[e.Index] = true
				}
				valid := 0
				for i, g := range req {
					if g.valid {
						valid++
					}
					if g.valid == rejected[i] {
						t.Errorf("signal %s (valid=%v) rejected=%v: %s", g.id, g.valid, rejected[i], raw)
					}
				}
				switch {
				case valid > 0 && resp.StatusCode != 202:
					t.Errorf("status %d with %d valid signals: %s", resp.StatusCode, valid, raw)
				case valid == 0 && resp.StatusCode != 400:
					t.Errorf("status %d with no valid signal: %s", resp.StatusCode, raw)
				}
				mu.Lock()
				for i, g := range req {
					if !rejected[i] && resp.StatusCode == 202 {
						accepted[g.id] = true
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, req := range reqs {
		work <- req
	}
	close(work)
	wg.Wait()
	return accepted
}

// copies is what a store holds, by event_id: what harness's check takes.
func copies(stored []schemas.Signal) map[string]int {
	return harness.Copies(stored, func(s schemas.Signal) string { return s.EventID })
}

func TestIngestEndToEnd(t *testing.T) {
	const n = 3000
	sigs := generate(42, n)
	invalid := 0
	for _, g := range sigs {
		if !g.valid {
			invalid++
		}
	}
	for _, store := range []string{"sqlite", "clickhouse"} {
		t.Run(store, func(t *testing.T) {
			ctx := context.Background()
			var args []string
			var read func() []schemas.Signal
			switch store {
			case "sqlite":
				dir := t.TempDir()
				args = []string{"--data-dir", dir}
				read = func() []schemas.Signal {
					s, err := sqlite.Open(ctx, filepath.Join(dir, "telemetry.db"), metrics.NewSet())
					if err != nil {
						t.Fatal(err)
					}
					defer s.Close()
					got, err := s.Signals(ctx, 0, 1<<62)
					if err != nil {
						t.Fatal(err)
					}
					return got
				}
			case "clickhouse":
				dsn := testClickHouseDSN()
				dropAfter(t, dsn)
				args = []string{"--clickhouse", dsn}
				read = func() []schemas.Signal {
					c, err := clickhouse.Open(ctx, dsn, clickhouse.Options{}, metrics.NewSet())
					if err != nil {
						t.Fatalf("ClickHouse is required (start it with .ci/services): %v", err)
					}
					defer c.Close()
					got, err := c.Signals(ctx, 0, 1<<62)
					if err != nil {
						t.Fatal(err)
					}
					return got
				}
			}
			p := startServe(t, append(args, "--flush-interval", "100ms", "--batch-size", "500")...)
			l := harness.NewLedger()
			accepted := postAll(t, l, sigs, 7, p)
			if len(accepted) != n-invalid {
				t.Errorf("accepted %d, want %d", len(accepted), n-invalid)
			}
			harness.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
				if w := p.metric(`rung_sink_rows_written_total{table="signals"}`); w != float64(len(accepted)) {
					return fmt.Errorf("rows written %v, want %d", w, len(accepted))
				}
				return nil
			})
			if got := p.metric("rung_signals_accepted_total"); got != float64(len(accepted)) {
				t.Errorf("rung_signals_accepted_total = %v, want %d", got, len(accepted))
			}
			if got := p.metric("rung_signals_received_total"); got != n {
				t.Errorf("rung_signals_received_total = %v, want %d", got, n)
			}
			if got := p.metric(`rung_signals_rejected_total{reason="schema"}`); got != float64(invalid) {
				t.Errorf("rejected for schema = %v, want %d", got, invalid)
			}
			if got := p.metric("rung_validation_disagreements_total"); got != 0 {
				t.Errorf("fast path and oracle disagreed %v times", got)
			}
			dropped := p.dropped()
			p.stop()
			l.Check(t, harness.Outcome{Stored: copies(read()), Dropped: dropped})
		})
	}
}

// dropAfter drops the test database behind dsn when the test ends: the server is shared.
func dropAfter(t *testing.T, dsn string) {
	t.Cleanup(func() {
		c, err := clickhouse.Open(context.Background(), dsn, clickhouse.Options{Writers: 1}, metrics.NewSet())
		if err != nil {
			t.Errorf("drop test database: %v", err)
			return
		}
		defer c.Close()
		if err := c.DropDatabase(context.Background()); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
}

func testClickHouseDSN() string {
	addr := os.Getenv("RUNG_TEST_CLICKHOUSE")
	if addr == "" {
		addr = "clickhouse://127.0.0.1:9000"
	}
	return fmt.Sprintf("%s/rung_test_%08x", strings.TrimSuffix(addr, "/"), rand.Uint32())
}

// TestSIGTERMDrains holds signals in the buffer (a long flush interval), sends SIGTERM,
// and finds every accepted signal stored: shutdown drains before it exits.
func TestSIGTERMDrains(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, "--data-dir", dir, "--flush-interval", "1h", "--batch-size", "100000")
	sigs := generate(9, 500)
	l := harness.NewLedger()
	accepted := postAll(t, l, sigs, 3, p)
	if held := p.metric("rung_buffer_signals"); held != float64(len(accepted)) {
		t.Fatalf("buffer holds %v signals before SIGTERM, want %d", held, len(accepted))
	}
	p.stop()
	s, err := sqlite.Open(context.Background(), filepath.Join(dir, "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Signals(context.Background(), 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	l.Check(t, harness.Outcome{Stored: copies(got)}) // the drain dropped nothing: stop checks the exit is 0
}
