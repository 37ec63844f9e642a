package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
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
	collectAs(t, c, p, body, harness.BrowserUA)
}

// collectAs is collect with the User-Agent ua.
func collectAs(t *testing.T, c *http.Client, p *proc, body, ua string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.url("/collect"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("User-Agent", ua)
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

// orderSignal is one signal of the generated traffic, with where it truly stands.
type orderSignal struct {
	kind    string // pageview, event, exposure
	path    string // pageview
	name    string // event
	variant string // exposure
	id      string // event_id
	ts      int64  // when the client made it, Unix ms
	dup     bool   // a copy of an earlier signal of the same session
	newSess bool   // the first signal after a gap of at least the timeout
}

// orderVisitor is one visitor's traffic: signals in their true order, cut into units
// (signals that must travel in one request: a goal and an exposure made in the same
// millisecond), then into the requests the visitor sends one after another.
type orderVisitor struct {
	anon     string
	bot      bool
	signals  []orderSignal
	requests [][]orderSignal
}

const (
	orderTimeout = time.Minute
	orderSite    = "order.example"
)

// genOrderTraffic makes n visitors (and a few bots) browsing over the last 50 minutes:
// sessions split by gaps across the timeout, pageviews, scrolls, goals before and after
// exposures (some in the same millisecond as the exposure), a second exposure to another
// variant, duplicates, and requests of one to many signals, some covering several
// sessions (a queue replayed after an outage).
func genOrderTraffic(r *rand.Rand, n int, now time.Time) []*orderVisitor {
	paths := []string{"/", "/pricing", "/docs", "/blog", "/signup"}
	variants := []string{"control", "b"}
	var out []*orderVisitor
	seq := 0
	for i := range n + n/20 {
		v := &orderVisitor{anon: fmt.Sprintf("visitor-%05d", i), bot: i >= n}
		variant := variants[r.IntN(2)]
		t := now.Add(-50*time.Minute + time.Duration(r.Int64N(int64(5*time.Minute)))).UnixMilli()
		var newSess bool // the next signal is the first of a session after the first
		add := func(s orderSignal) orderSignal {
			seq++
			s.id, s.ts, s.newSess = fmt.Sprintf("ev-%07d", seq), t, newSess
			newSess = false
			v.signals = append(v.signals, s)
			return s
		}
		var units [][]orderSignal
		for sess, ns := 0, 1+r.IntN(3); sess < ns; sess++ {
			if sess > 0 {
				t += (orderTimeout + 15*time.Second + time.Duration(r.Int64N(int64(4*time.Minute)))).Milliseconds()
				newSess = true
			}
			var inSession []orderSignal
			for k, nk := 0, 1+r.IntN(6); k < nk; k++ {
				if k > 0 {
					t += (time.Second + time.Duration(r.Int64N(int64(orderTimeout-16*time.Second)))).Milliseconds()
				}
				var s orderSignal
				switch x := r.IntN(100); {
				case x < 45 || (k == 0 && x < 85):
					s = orderSignal{kind: "pageview", path: paths[r.IntN(len(paths))]}
				case x < 60:
					s = orderSignal{kind: "event", name: "scroll"}
				case x < 75:
					s = orderSignal{kind: "event", name: "form_submitted"}
				case x < 85: // a goal, then an exposure in the same millisecond
					g := add(orderSignal{kind: "event", name: "form_submitted"})
					e := add(orderSignal{kind: "exposure", variant: variant})
					units = append(units, []orderSignal{g, e})
					inSession = append(inSession, g, e)
					continue
				default:
					s = orderSignal{kind: "exposure", variant: variant}
					if r.IntN(6) == 0 {
						s.variant = variants[r.IntN(2)] // a later exposure to another variant loses
					}
				}
				s = add(s)
				units = append(units, []orderSignal{s})
				inSession = append(inSession, s)
				if r.IntN(10) == 0 { // a retry of one of the session's signals
					d := inSession[r.IntN(len(inSession))]
					d.dup, d.newSess = true, false
					units = append(units, []orderSignal{d})
				}
			}
		}
		for len(units) > 0 {
			k := 1 + r.IntN(4)
			if r.IntN(12) == 0 {
				k = len(units) // everything left in one request: a replayed queue
			}
			k = min(k, len(units))
			var req []orderSignal
			for _, u := range units[:k] {
				req = append(req, u...)
			}
			v.requests = append(v.requests, req)
			units = units[k:]
		}
		out = append(out, v)
	}
	return out
}

// orderModel computes the stats from the traffic's true order, with nothing of rung's:
// sessions cut where the generator put the gaps, each landing on its first pageview
// ("" without one) and converting with a goal; each visitor in the experiment under
// their first exposure's variant, converting with a goal strictly after it. Copies and
// bots count nowhere.
func orderModel(vs []*orderVisitor) (landing, variant counts) {
	landing, variant = counts{}, counts{}
	for _, v := range vs {
		if v.bot {
			continue
		}
		var (
			path, first                    string
			started, landed, conv, exposed bool
			visConv                        bool
		)
		end := func() {
			if started {
				c := landing[path]
				c[0]++
				if conv {
					c[1]++
				}
				landing[path] = c
			}
		}
		for _, s := range v.signals {
			if s.dup {
				continue
			}
			if !started || s.newSess {
				end()
				started, landed, path, conv = true, false, "", false
			}
			if s.kind == "pageview" && !landed {
				landed, path = true, s.path
			}
			switch s.kind {
			case "event":
				if s.name == "form_submitted" {
					conv = true
					visConv = visConv || exposed
				}
			case "exposure":
				if !exposed {
					exposed, first = true, s.variant
				}
			}
		}
		end()
		if exposed {
			c := variant[first]
			c[0]++
			if visConv {
				c[1]++
			}
			variant[first] = c
		}
	}
	return landing, variant
}

// body is the JSON array of one request, stamped with sent_at now.
func (v *orderVisitor) body(req []orderSignal, sent int64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, s := range req {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"v":2,"type":%q,"site":%q,"anonymous_id":%q,"event_id":%q,"ts":%d,"sent_at":%d`,
			s.kind, orderSite, v.anon, s.id, s.ts, sent)
		switch s.kind {
		case "pageview":
			fmt.Fprintf(&b, `,"url":"https://%s%s"`, orderSite, s.path)
		case "event":
			fmt.Fprintf(&b, `,"name":%q`, s.name)
		case "exposure":
			fmt.Fprintf(&b, `,"experiment":"hero","variant":%q`, s.variant)
		}
		b.WriteByte('}')
	}
	b.WriteByte(']')
	return b.String()
}

// TestOrderProperty sends generated traffic (see genOrderTraffic) to a real `rung
// serve` on each sink: each visitor's requests in order, as one browser sends them, the
// visitors' requests shuffled over eight concurrent connections, the server flushing
// small batches. The stats API must
// equal the model computed from the traffic's true order, and `rung reconcile` must
// find nothing. The seed is logged; RUNG_ORDER_SEED replays a run.
func TestOrderProperty(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RUNG_ORDER_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("RUNG_ORDER_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (RUNG_ORDER_SEED=%d replays this run)", seed, seed)
	for _, store := range orderStores {
		t.Run(store, func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0x6f72646572))
			vs := genOrderTraffic(r, 300, time.Now())
			wantLanding, wantVariants := orderModel(vs)
			// Small flushes, of a size the seed picks: the buffer cuts the traffic too.
			batch := 5 + r.IntN(60)
			p, at := orderServe(t, store, "--session-timeout", orderTimeout.String(), "--batch-size", strconv.Itoa(batch))
			const conns = 8
			queues := make([][]*orderVisitor, conns)
			for _, v := range vs {
				c := r.IntN(conns)
				queues[c] = append(queues[c], v)
			}
			orders := make([][]int, conns) // per connection: which visitor sends next
			signals, requests := 0, 0
			for c, q := range queues {
				for i, v := range q {
					for range v.requests {
						orders[c] = append(orders[c], i)
					}
					requests += len(v.requests)
					for _, req := range v.requests {
						signals += len(req)
					}
				}
				r.Shuffle(len(orders[c]), func(i, j int) { orders[c][i], orders[c][j] = orders[c][j], orders[c][i] })
			}
			t.Logf("%d visitors, %d signals in %d requests over %d connections, flushes of %d", len(vs), signals, requests, conns, batch)
			parallel(conns, conns, func(c int) {
				cl := &http.Client{Transport: &http.Transport{}}
				next := make([]int, len(queues[c]))
				for _, i := range orders[c] {
					v := queues[c][i]
					req := v.requests[next[i]]
					next[i]++
					body := v.body(req, time.Now().UnixMilli())
					if v.bot {
						collectAs(t, cl, p, body, "curl/8.5.0")
					} else {
						collect(t, cl, p, body)
					}
				}
			})
			waitStats(t, "landing pages", wantLanding, func() (counts, error) { return landingCounts(p, orderSite) })
			waitStats(t, "experiment hero", wantVariants, func() (counts, error) { return variantCounts(p, orderSite, "hero") })
			p.stop()
			reconcileClean(t, at, "--session-timeout", orderTimeout.String())
		})
	}
}
