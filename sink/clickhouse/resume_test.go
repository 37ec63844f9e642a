package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/cespare/xxhash/v2"

	"github.com/rungdev/rung/sink"
)

// resumeBase is when the generated visitors are active, Unix ms.
const resumeBase = int64(1_700_000_000_000)

// openVisitors inserts n visitors with an open session each (two pageviews a second
// apart), generated in the server so that large counts take no time.
func openVisitors(t testing.TB, c *ClickHouse, n int) {
	t.Helper()
	err := c.conn.Exec(context.Background(), fmt.Sprintf(`INSERT INTO %s.signals
		(date, received_at, received_ms, event_id, type, site, anonymous_id, url, path, session_ms)
		SELECT toDate(toDateTime(intDiv(ms, 1000))), toDateTime(intDiv(ms, 1000)), ms, concat('event-', toString(number)),
			'pageview', 'a.example', concat('visitor-', toString(intDiv(number, 2))), 'https://a.example/p', '/p', start
		FROM (SELECT number, %d + intDiv(number, 2) AS start, start + (number %% 2) * 1000 AS ms FROM system.numbers LIMIT %d)`,
		c.db, resumeBase, 2*n))
	if err != nil {
		t.Fatalf("insert %d open visitors: %v", n, err)
	}
}

// oldResume is the single query Resume ran before it read in chunks: every open
// visitor in one IN set, every signal of theirs sorted in one result.
func oldResume(ctx context.Context, c *ClickHouse, since, first int64) (int, error) {
	open := `SELECT site, anonymous_id, max(session_ms) FROM ` + c.db + `.signals
		WHERE session_ms > 0 AND received_ms >= @since AND date >= toDate(@since_day) GROUP BY site, anonymous_id`
	rows, err := c.conn.Query(ctx, "SELECT event_id, type, site, anonymous_id, received_ms, bot, url, path, referrer, "+
		"utm_source, utm_medium, utm_campaign, utm_term, utm_content, name, experiment, variant, value, props, session_ms FROM "+
		c.db+".signals WHERE session_ms >= @first AND date >= toDate(@first_day) AND "+
		"(site, anonymous_id, session_ms) IN ("+open+") ORDER BY received_ms",
		ch.Named("since", since), ch.Named("since_day", day(since, -1)), ch.Named("first", first), ch.Named("first_day", day(first, -1)))
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

// Under a per-query memory limit that the single query of old runs out of, and the
// new query too when it reads all visitors as one chunk, Resume still reads every open
// session back, a chunk of at most the chunk size at a time: what broke a restart on 15M
// signals, scaled down. On one thread, the old query needs ~200 MiB here, the new one
// as one chunk ~50, and each chunk of 10k visitors ~25, mostly the columns' read
// buffers, which do not grow with the visitors.
func TestResumeBoundedMemory(t *testing.T) {
	const visitors, chunk, limit = 200_000, 10_000, 40 << 20
	c := openTest(t)
	openVisitors(t, c, visitors)
	ctx := ch.Context(context.Background(), ch.WithSettings(ch.Settings{"max_memory_usage": limit, "max_threads": 1}))
	newest := resumeBase + visitors - 1 + 1000
	_, err := oldResume(ctx, c, newest-30*60_000, resumeBase)
	var ex *ch.Exception
	if !errors.As(err, &ex) || ex.Code != 241 { // MEMORY_LIMIT_EXCEEDED
		t.Fatalf("the single query under max_memory_usage=%d: %v, want exception 241, memory limit exceeded", limit, err)
	}
	_, err = c.resume(ctx, 30*60_000, sink.ResumeScope{}, 10*visitors, func([]sink.Resume) error { return nil })
	if !errors.As(err, &ex) || ex.Code != 241 {
		t.Fatalf("Resume in one chunk under max_memory_usage=%d: %v, want exception 241, memory limit exceeded", limit, err)
	}

	seen := make(map[string]bool, visitors)
	chunks := 0
	skipped, err := c.resume(ctx, 30*60_000, sink.ResumeScope{}, chunk, func(rs []sink.Resume) error {
		chunks++
		if len(rs) > chunk {
			t.Errorf("chunk %d holds %d visitors, over %d", chunks, len(rs), chunk)
		}
		for _, r := range rs {
			if len(r.Signals) != 2 || r.Session.StartMs != r.Signals[0].EventAt {
				t.Fatalf("%+v: want its two signals, the first at the session start", r)
			}
			seen[r.Session.AnonymousID] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Resume under max_memory_usage=%d: %v", limit, err)
	}
	if len(seen) != visitors || skipped != 0 || chunks < visitors/chunk {
		t.Errorf("restored %d of %d visitors in %d chunks, %d skipped", len(seen), visitors, chunks, skipped)
	}

	// Half the partitions: their sessions go back to the server as an external table.
	scope := sink.ResumeScope{Partitions: 64}
	for p := 0; p < 64; p += 2 {
		scope.Owned = append(scope.Owned, p)
	}
	owns, want, got := scope.Owner(), 0, 0
	for i := range visitors {
		if owns(fmt.Sprintf("visitor-%d", i)) {
			want++
		}
	}
	if _, err := c.resume(ctx, 30*60_000, scope, chunk, func(rs []sink.Resume) error {
		for _, r := range rs {
			if !owns(r.Session.AnonymousID) || len(r.Signals) != 2 {
				t.Fatalf("%+v: not owned, or not its two signals", r)
			}
		}
		got += len(rs)
		return nil
	}); err != nil {
		t.Fatalf("Resume of half the partitions under max_memory_usage=%d: %v", limit, err)
	}
	if got != want {
		t.Errorf("restored %d visitors of half the partitions, want %d", got, want)
	}
}

// Chunks, partitions and a limit together: every chunk keeps only the owned partitions'
// visitors, and the limit keeps the most recent of them.
func TestResumeChunksPartitionsLimit(t *testing.T) {
	const visitors, chunk, parts = 3000, 400, 64
	c := openTest(t)
	openVisitors(t, c, visitors) // visitor i active at resumeBase + i
	owned := []int{0, 5, 17, 18, 40, 63}
	in := map[uint64]bool{}
	for _, p := range owned {
		in[uint64(p)] = true
	}
	ownedCount := 0
	for i := range visitors {
		if in[xxhash.Sum64String(fmt.Sprintf("visitor-%d", i))%parts] {
			ownedCount++
		}
	}
	for _, tc := range []struct {
		name    string
		timeout int64
		limit   int
	}{
		{"all", 30 * 60_000, 0},
		// With a timeout of 3200 ms the visitors' last signals (1000 to 3999 ms after
		// resumeBase) are a cut-off step (100 ms) per 100 visitors, a tenth of them owned.
		{"limited", 3200, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]bool{}
			chunks := 0
			skipped, err := c.resume(context.Background(), tc.timeout, sink.ResumeScope{Partitions: parts, Owned: owned, Limit: tc.limit}, chunk,
				func(rs []sink.Resume) error {
					chunks++
					for _, r := range rs {
						if !in[xxhash.Sum64String(r.Session.AnonymousID)%parts] {
							t.Errorf("restored %s, not in the owned partitions", r.Session.AnonymousID)
						}
						got[r.Session.AnonymousID] = true
					}
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			if tc.limit == 0 {
				if len(got) != ownedCount || skipped != 0 || chunks < 2 {
					t.Errorf("restored %d in %d chunks, skipped %d; want the %d owned in several chunks", len(got), chunks, skipped, ownedCount)
				}
				return
			}
			// Every restored visitor is more recent than every owned one left out.
			oldest := visitors
			for i := range visitors {
				if got[fmt.Sprintf("visitor-%d", i)] {
					oldest = min(oldest, i)
				}
			}
			for i := oldest; i < visitors; i++ {
				a := fmt.Sprintf("visitor-%d", i)
				if in[xxhash.Sum64String(a)%parts] && !got[a] {
					t.Errorf("left %s out but restored the older visitor-%d", a, oldest)
				}
			}
			if len(got) > tc.limit*13/10 || len(got) < tc.limit/2 {
				t.Errorf("restored %d with a limit of %d", len(got), tc.limit)
			}
			if diff := len(got) + skipped - ownedCount; diff < -ownedCount/10 || diff > ownedCount/10 {
				t.Errorf("restored %d and counted %d skipped of %d owned", len(got), skipped, ownedCount)
			}
		})
	}
}
