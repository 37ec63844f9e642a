package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
)

// The tests of this file check the order of a visitor's signals (see package preagg:
// event time, arrival sequence, the late rule) through a real `rung serve` on each
// sink, by the stats API and `rung reconcile`.

var orderStores = []string{"sqlite", "clickhouse"}

// orderServe starts `rung serve` on store with args and returns it with the flags that
// point other subcommands at the same store.
func orderServe(t *testing.T, store string, args ...string) (*proc, []string) {
	t.Helper()
	var at []string
	switch store {
	case "sqlite":
		at = []string{"--data-dir", t.TempDir()}
	case "clickhouse":
		dsn := testClickHouseDSN()
		dropAfter(t, dsn)
		at = []string{"--clickhouse", dsn}
	default:
		t.Fatalf("unknown store %q", store)
	}
	return startServe(t, append(append(append([]string{}, at...), "--flush-interval", "50ms"), args...)...), at
}

// collect posts body to /collect as t.js does (text/plain, from a browser) and wants
// every signal in it accepted.
func collect(t *testing.T, c *http.Client, p *proc, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.url("/collect"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("User-Agent", harness.BrowserUA)
	resp, err := c.Do(req)
	if err != nil {
		t.Error(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || bytes.Contains(b, []byte(`"rejected":[{`)) {
		t.Errorf("POST /collect: %d %s\nbody: %s", resp.StatusCode, b, body)
	}
}

// counts is a stats answer or its expectation: by landing page or by variant, the
// sessions (visitors) and the converted ones.
type counts map[string][2]int64

// landingCounts asks the stats API for site's landing pages.
func landingCounts(p *proc, site string) (counts, error) {
	var rep struct {
		Pages []struct {
			Path      string `json:"path"`
			Sessions  int64  `json:"sessions"`
			Converted int64  `json:"converted"`
		} `json:"pages"`
	}
	if err := getStats(p, "/v1/stats/landing-pages?limit=1000&from=-2d&site="+url.QueryEscape(site), &rep); err != nil {
		return nil, err
	}
	out := counts{}
	for _, pg := range rep.Pages {
		out[pg.Path] = [2]int64{pg.Sessions, pg.Converted}
	}
	return out, nil
}

// variantCounts asks the stats API for experiment exp on site.
func variantCounts(p *proc, site, exp string) (counts, error) {
	var rep struct {
		Variants []struct {
			Name      string `json:"name"`
			Visitors  int64  `json:"visitors"`
			Converted int64  `json:"converted"`
		} `json:"variants"`
	}
	if err := getStats(p, "/v1/stats/experiments/"+url.PathEscape(exp)+"?from=-2d&site="+url.QueryEscape(site), &rep); err != nil {
		return nil, err
	}
	out := counts{}
	for _, v := range rep.Variants {
		out[v.Name] = [2]int64{v.Visitors, v.Converted}
	}
	return out, nil
}

func getStats(p *proc, path string, into any) error {
	resp, err := http.Get(p.url(path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return json.Unmarshal(b, into)
}

// waitStats polls the stats API until it answers want: a flush lands a moment after
// the 202. The last answer is in the error.
func waitStats(t *testing.T, what string, want counts, get func() (counts, error)) {
	t.Helper()
	harness.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		got, err := get()
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, want) {
			return fmt.Errorf("%s: the stats API answers %v, want %v", what, got, want)
		}
		return nil
	})
}

// reconcileClean runs `rung reconcile` over the last two days (and the next hour) on
// the store at and fails on any mismatch.
func reconcileClean(t *testing.T, at []string, args ...string) {
	t.Helper()
	now := time.Now()
	out, err := runCmd(t, runReconcile, nil, append(append(append([]string{}, at...), "--business", "none",
		"--from", strconv.FormatInt(now.Add(-48*time.Hour).UnixMilli(), 10),
		"--to", strconv.FormatInt(now.Add(time.Hour).UnixMilli(), 10)), args...)...)
	if err != nil {
		t.Errorf("rung reconcile: %v\n%s", err, out)
	} else if !strings.Contains(out, ": 0 mismatches") {
		t.Errorf("rung reconcile:\n%s", out)
	} else {
		t.Log(strings.TrimSpace(out))
	}
}

// parallel runs f(i) for i in [0, n) on a few goroutines, each i's calls in order.
func parallel(n, workers int, f func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// TestRegressionConversionBeforeExposureSameMillisecond: 240 visitors each post a
// pageview, every 7th a goal, an exposure, and every 3rd a goal after it, as requests
// one after another without client times, so each signal's event time is its receive
// time and a goal and the exposure after it often share a millisecond (every 14th
// visitor sends those two in one request, so they always do). A conversion counts only
// when it comes after the first exposure in the visitor's order; the goal before it
// never does, whatever the clock says.
func TestRegressionConversionBeforeExposureSameMillisecond(t *testing.T) {
	for _, store := range orderStores {
		t.Run(store, func(t *testing.T) {
			p, at := orderServe(t, store)
			const site, n = "same-ms.example", 240
			sig := func(i int, body string) string {
				return fmt.Sprintf(`{"site":%q,"anonymous_id":"visitor-%04d",%s}`, site, i, body)
			}
			pageview := `"type":"pageview","url":"https://same-ms.example/"`
			goal := `"type":"event","name":"form_submitted"`
			variants := []string{"control", "b"}
			wantVariants, wantLanding := counts{}, counts{}
			c := &http.Client{}
			parallel(n, 8, func(i int) {
				v := variants[i%2]
				exposure := `"type":"exposure","experiment":"hero","variant":"` + v + `"`
				collect(t, c, p, sig(i, pageview))
				switch {
				case i%14 == 0:
					collect(t, c, p, "["+sig(i, goal)+","+sig(i, exposure)+"]")
				case i%7 == 0:
					collect(t, c, p, sig(i, goal))
					collect(t, c, p, sig(i, exposure))
				default:
					collect(t, c, p, sig(i, exposure))
				}
				if i%3 == 0 {
					collect(t, c, p, sig(i, goal))
				}
			})
			for i := range n {
				w := wantVariants[variants[i%2]]
				w[0]++
				if i%3 == 0 {
					w[1]++
				}
				wantVariants[variants[i%2]] = w
				l := wantLanding["/"]
				l[0]++
				if i%3 == 0 || i%7 == 0 {
					l[1]++
				}
				wantLanding["/"] = l
			}
			waitStats(t, "experiment hero", wantVariants, func() (counts, error) { return variantCounts(p, site, "hero") })
			waitStats(t, "landing pages", wantLanding, func() (counts, error) { return landingCounts(p, site) })
			p.stop()
			reconcileClean(t, at)
		})
	}
}

// TestRegressionReplayedQueueTwoSessions: a visitor browses for 40 minutes while the
// collector is unreachable — a session on /a, 35 minutes away, a second on /b that
// converts — and t.js then posts its stored queue as one array. With the client's ts
// and sent_at each signal is placed when it was made, so the array makes two sessions,
// as live delivery would have; the client's clock being hours off changes nothing.
func TestRegressionReplayedQueueTwoSessions(t *testing.T) {
	for _, store := range orderStores {
		t.Run(store, func(t *testing.T) {
			p, at := orderServe(t, store)
			const site, n = "replay.example", 20
			c := &http.Client{}
			for i := range n {
				skew := time.Duration(i-n/2) * time.Hour // the client's clock: hours off, either way
				sent := time.Now().Add(skew)
				sig := func(ago time.Duration, body string) string {
					return fmt.Sprintf(`{"v":2,"site":%q,"anonymous_id":"replayer-%04d","ts":%d,"sent_at":%d,%s}`,
						site, i, sent.Add(-ago).UnixMilli(), sent.UnixMilli(), body)
				}
				collect(t, c, p, "["+strings.Join([]string{
					sig(40*time.Minute, `"type":"pageview","url":"https://replay.example/a"`),
					sig(39*time.Minute, `"type":"event","name":"scroll"`),
					sig(38*time.Minute, `"type":"pageview","url":"https://replay.example/a/more"`),
					sig(3*time.Minute, `"type":"pageview","url":"https://replay.example/b"`),
					sig(2*time.Minute, `"type":"event","name":"form_submitted"`),
				}, ",")+"]")
			}
			waitStats(t, "landing pages", counts{"/a": {n, 0}, "/b": {n, n}},
				func() (counts, error) { return landingCounts(p, site) })
			p.stop()
			reconcileClean(t, at)
		})
	}
}
