package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

// TestQuarantine turns the quarantine on, posts what a broken tracker sends, and reads
// back from /v1/quarantine each rejected signal with its site, reason and raw JSON.
func TestQuarantine(t *testing.T) {
	for _, store := range []string{"sqlite", "clickhouse"} {
		t.Run(store, func(t *testing.T) {
			args := []string{"--quarantine", "--quarantine-rate", "1000", "--data-dir", t.TempDir()}
			if store == "clickhouse" {
				dsn := testClickHouseDSN()
				dropAfter(t, dsn)
				args = append(args, "--clickhouse", dsn)
			}
			p := startServe(t, args...)
			bodies := []string{
				`{"type":"pageview","site":"shop.example","anonymous_id":"visitor-0001","url":"ftp://nope"}`,
				`[{"type":"event","site":"shop.example","anonymous_id":"visitor-0001"}]`,
				`{"type":"pageview","site":"shop.example",`,
			}
			for _, b := range bodies {
				resp, err := http.Post(p.url("/collect"), "text/plain", strings.NewReader(b))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 400 {
					t.Fatalf("%s: status %d", b, resp.StatusCode)
				}
			}
			var got struct{ Signals []schemas.Quarantined }
			harness.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
				req, _ := http.NewRequest("GET", p.url("/v1/quarantine?site=shop.example"), nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				got.Signals = nil
				if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
					return err
				}
				if len(got.Signals) != 2 {
					return fmt.Errorf("%d quarantined for shop.example, want 2", len(got.Signals))
				}
				return nil
			})
			byPointer := map[string]schemas.Quarantined{}
			for _, q := range got.Signals {
				byPointer[q.Pointer] = q
			}
			if q := byPointer["/url"]; q.Code != "schema" || !strings.Contains(q.Raw, "ftp://nope") || q.Message == "" {
				t.Errorf("bad url not quarantined as expected: %+v", q)
			}
			if q := byPointer[""]; !strings.Contains(q.Message, "name") || !strings.HasPrefix(q.Raw, `{"type":"event"`) {
				t.Errorf("event without name not quarantined as expected: %+v", q)
			}
			if got := p.metric(`rung_quarantine_rows_total{result="written"}`); got != 3 {
				t.Errorf("quarantine rows written %v, want 3 (the malformed body too)", got)
			}
			p.stop()
		})
	}
}
