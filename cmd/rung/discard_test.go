package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
)

// TestServeDiscard runs `rung serve --sink discard` as a bench does: every accepted
// signal goes through the buffer, its flushers and the sessionizer, and the discard
// sink counts it; the stats API answers as over an empty store; SIGTERM drains and exits.
func TestServeDiscard(t *testing.T) {
	p := startServe(t, "--sink", "discard", "--relay=false", "--data-dir", t.TempDir(), "--flush-interval", "50ms")
	accepted := postAll(t, harness.NewLedger(), generate(21, 3000), 21, p)
	if len(accepted) == 0 {
		t.Fatal("nothing accepted")
	}
	// postAll's client is a bot to rung, whose signals no session counts: one browser's.
	req, _ := http.NewRequest("POST", p.url("/collect"), strings.NewReader(`[`+
		`{"type":"pageview","site":"e2e.example","anonymous_id":"browser-0001","event_id":"browser-e1","url":"https://e2e.example/p?utm_source=s"},`+
		`{"type":"event","site":"e2e.example","anonymous_id":"browser-0001","event_id":"browser-e2","name":"form_submitted"}]`))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("User-Agent", harness.BrowserUA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("browser's signals: %d", resp.StatusCode)
	}
	accepted["browser-e1"], accepted["browser-e2"] = true, true
	discarded := `rung_sink_rows_discarded_total{table="signals"}`
	harness.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if got := p.metric(discarded); got != float64(len(accepted)) {
			return fmt.Errorf("%s = %v, want the %d accepted", discarded, got, len(accepted))
		}
		return nil
	})
	if got := p.metric(`rung_signals_accepted_total`); got != float64(len(accepted)) {
		t.Errorf("rung_signals_accepted_total = %v, want %d", got, len(accepted))
	}
	// The sessionizer ran: sessions opened and rollup rows reached the sink.
	if p.metric(`rung_preagg_sessions_started_total`) == 0 {
		t.Error("no session started: the flush did not go through the sessionizer")
	}
	if p.metric(`rung_sink_rows_discarded_total{table="landing_hourly"}`) == 0 {
		t.Error("no landing rollup row reached the sink")
	}
	resp, err = http.Get(p.url("/v1/stats/landing-pages?site=e2e.example"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("stats over the discard sink: %d %s", resp.StatusCode, body)
	}
	p.stop()
}
