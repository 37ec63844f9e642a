package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
)

// TestSQLMetacharactersInFilters stores signals whose paths and utm values carry SQL
// metacharacters, then filters the stats API with such values, on both sinks: every
// filter matches only its own literal value, and nothing errors.
func TestSQLMetacharactersInFilters(t *testing.T) {
	evil := []string{`x' OR '1'='1`, `x"; DROP TABLE signals; --`, `%' --`, `\' OR 1=1 #`, "a\x00b"}
	for _, store := range []string{"sqlite", "clickhouse"} {
		t.Run(store, func(t *testing.T) {
			args := []string{"--data-dir", t.TempDir(), "--flush-interval", "50ms"}
			if store == "clickhouse" {
				dsn := testClickHouseDSN()
				dropAfter(t, dsn)
				args = append(args, "--clickhouse", dsn)
			}
			p := startServe(t, args...)
			var batch []map[string]any
			for i, v := range append([]string{"plain"}, evil...) {
				batch = append(batch, map[string]any{"type": "pageview", "site": "inject.example",
					"anonymous_id": fmt.Sprintf("visitor-%04d", i), "url": "https://inject.example/p?q=1", "utm_source": v})
			}
			body, _ := json.Marshal(batch)
			req, _ := http.NewRequest("POST", p.url("/collect"), strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "text/plain")
			req.Header.Set("User-Agent", harness.BrowserUA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 202 {
				t.Fatalf("post: %v %v", resp, err)
			}
			resp.Body.Close()
			landing := func(v string) (int, float64) {
				q := url.Values{"site": {"inject.example"}, "utm_source": {v}, "from": {"-1h"}}
				resp, err := http.Get(p.url("/v1/stats/landing-pages?" + q.Encode()))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var rep struct{ Sessions float64 }
				json.NewDecoder(resp.Body).Decode(&rep)
				return resp.StatusCode, rep.Sessions
			}
			// The visitors fall in different buffer shards, flushed apart: wait for all.
			harness.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
				if st, n := landing(""); st != 200 || n != float64(1+len(evil)) {
					return fmt.Errorf("unfiltered: status %d, %v sessions, want %d", st, n, 1+len(evil))
				}
				return nil
			})
			for _, v := range append(evil, `nothing' OR ''='`) {
				st, n := landing(v)
				want := 1.0
				if strings.HasPrefix(v, "nothing") {
					want = 0
				}
				if st != 200 || n != want {
					t.Errorf("utm_source=%q: status %d, %v sessions; want 200 and %v", v, st, n, want)
				}
				// The trend and the sources (by referrer, from raw signals) filter the same.
				for _, path := range []string{"/v1/stats/trend", "/v1/stats/sources?by=referrer"} {
					var rep struct {
						Total, All struct{ Sessions float64 }
					}
					u := p.url(path) + map[bool]string{true: "&", false: "?"}[strings.Contains(path, "?")] +
						url.Values{"site": {"inject.example"}, "utm_source": {v}, "from": {"-1h"}}.Encode()
					resp, err := http.Get(u)
					if err != nil {
						t.Fatal(err)
					}
					json.NewDecoder(resp.Body).Decode(&rep)
					resp.Body.Close()
					if resp.StatusCode != 200 || rep.Total.Sessions+rep.All.Sessions != want {
						t.Errorf("%s utm_source=%q: status %d, %+v; want 200 and %v sessions", path, v, resp.StatusCode, rep, want)
					}
				}
			}
			for _, site := range []string{`x' OR '1'='1`, `inject.example' --`} {
				resp, err := http.Get(p.url("/v1/stats/experiments/e?site=" + url.QueryEscape(site)))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode >= 500 {
					t.Errorf("site=%q: status %d", site, resp.StatusCode)
				}
			}
		})
	}
}
