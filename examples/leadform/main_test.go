package main

import (
	"context"
	"encoding/json"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"go.uber.org/goleak"

	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/sqlite"
	"github.com/rungdev/rung/stitch"
	"github.com/rungdev/rung/stitch/events"
	"github.com/rungdev/rung/stitch/outbox"
	"github.com/rungdev/rung/stitch/sqldb/sqltest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const visitor = "visitor-journey-1"

type journey struct {
	tel *sqlite.SQLite
	p   *outbox.Pipeline
	srv *httptest.Server
}

// setup is the local journey's machinery: the embedded telemetry sink rung serve writes,
// the business database with its outbox and events table, the app, and its relay.
func setup(t *testing.T, postgres string) *journey {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	tel, err := sqlite.Open(ctx, filepath.Join(dir, "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tel.Close() })
	p, err := outbox.OpenPipeline(ctx, outbox.PipelineConfig{Postgres: postgres, SQLitePath: filepath.Join(dir, outbox.BusinessDBFile),
		Relay: outbox.RelayConfig{PollInterval: 10 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := migrateLeads(ctx, p.DB, p.Dialect); err != nil {
		t.Fatal(err)
	}
	lookup, err := stitch.NewLookup(tel, stitch.LookupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	a := &app{db: p.DB, dialect: p.Dialect, schemas: reg, attr: lookup, notify: p.Relay.Notify, log: slog.New(slog.DiscardHandler),
		now: time.Now, rungURL: "http://127.0.0.1:8080", site: "leadform.example",
		pageTmpl: template.Must(template.New("page").Parse(pageHTML))}
	srv := httptest.NewServer(a.routes())
	t.Cleanup(srv.Close)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }() // stopped at cleanup, before the database closes
	t.Cleanup(func() { cancel(); <-done })
	return &journey{tel: tel, p: p, srv: srv}
}

func (j *journey) pageview(t *testing.T, at time.Time, rawURL, referrer string) {
	t.Helper()
	u, _ := url.Parse(rawURL)
	q := u.Query()
	s := schemas.Signal{Type: schemas.TypePageview, ReceivedAt: at.UnixMilli(), Site: "leadform.example", AnonymousID: visitor,
		EventID: "pv-" + at.Format("150405.000000"), URL: rawURL, Path: u.Path, Referrer: referrer,
		UTMSource: q.Get("utm_source"), UTMMedium: q.Get("utm_medium"), UTMCampaign: q.Get("utm_campaign")}
	if err := j.tel.Write(context.Background(), &sink.Batch{Signals: []schemas.Signal{s}}); err != nil {
		t.Fatal(err)
	}
}

func (j *journey) post(t *testing.T, form url.Values) (int, map[string]string) {
	t.Helper()
	resp, err := http.PostForm(j.srv.URL+"/leads", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func (j *journey) event(t *testing.T, leadID string) events.Event {
	t.Helper()
	var got []events.Event
	harness.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		var err error
		got, err = events.List(context.Background(), j.p.DB, j.p.Dialect, events.Filter{SubjectID: leadID})
		if err == nil && len(got) != 1 {
			err = io.ErrUnexpectedEOF
		}
		return err
	})
	return got[0]
}

// Page view → form → lead → lead_created in the events table, with the visit's
// attribution, on the embedded default and on PostgreSQL.
func TestJourney(t *testing.T) {
	for _, tc := range []struct{ name, postgres string }{{"sqlite", ""}, {"postgres", "pg"}} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := ""
			if tc.postgres != "" {
				b := sqltest.Postgres(t)
				u, _ := url.Parse(sqltest.PostgresDSN())
				q := u.Query()
				q.Set("search_path", b.Schema)
				u.RawQuery = q.Encode()
				dsn = u.String()
			}
			j := setup(t, dsn)
			visited := time.Now().Add(-time.Hour).UTC()
			j.pageview(t, visited, "https://leadform.example/?utm_source=newsletter&utm_medium=email&utm_campaign=spring", "")
			j.pageview(t, visited.Add(time.Minute), "https://leadform.example/pricing", "https://leadform.example/")

			code, body := j.post(t, url.Values{"email": {"ada@example.com"}, "name": {"Ada"}, "amount": {"1200"}, "anonymous_id": {visitor}})
			if code != http.StatusCreated || body["lead_id"] == "" {
				t.Fatalf("POST /leads: %d %v", code, body)
			}
			e := j.event(t, body["lead_id"])
			if e.ID != body["event_id"] || e.Name != "lead_created" || e.Source != "newsletter" || e.Medium != "email" ||
				e.Campaign != "spring" || e.LandingPage != "/" || e.Amount == nil || *e.Amount != 1200 {
				t.Fatalf("event %+v", e)
			}
			var p stitch.LeadCreated
			if err := json.Unmarshal(e.Payload, &p); err != nil || p.AnonymousID != visitor || !p.FirstSeenAt.Equal(visited.Truncate(time.Millisecond)) {
				t.Fatalf("payload %s: %v", e.Payload, err)
			}
			reg, err := schemas.NewRegistry()
			if err != nil {
				t.Fatal(err)
			}
			if err := reg.ValidateEvent("lead_created", e.Payload); err != nil {
				t.Fatal(err)
			}

			// Bad input: a clear 400, and nothing written anywhere.
			for _, bad := range []url.Values{{"email": {"not-an-address"}}, {"email": {"a@b.example"}, "amount": {"-3"}}, {"email": {"a@b.example"}, "amount": {"NaN"}}} {
				code, body := j.post(t, bad)
				if code != http.StatusBadRequest || body["error"] == "" {
					t.Fatalf("%v: %d %v", bad, code, body)
				}
			}
			// A lead without a usable anonymous_id is still a lead.
			code, body = j.post(t, url.Values{"email": {"bob@example.com"}, "anonymous_id": {"<script>"}})
			if code != http.StatusCreated {
				t.Fatalf("tampered anonymous_id: %d %v", code, body)
			}
			e = j.event(t, body["lead_id"])
			var q stitch.LeadCreated
			if err := json.Unmarshal(e.Payload, &q); err != nil || e.Source != "" || q.AnonymousID != "" || q.LastTouch.Source != "" {
				t.Fatalf("lead without attribution: %+v %s", e, e.Payload)
			}
			var leads, rows int
			j.p.DB.QueryRow(`SELECT count(*) FROM leads`).Scan(&leads)
			j.p.DB.QueryRow(`SELECT count(*) FROM rung_outbox`).Scan(&rows)
			if leads != 2 || rows != 2 {
				t.Fatalf("%d leads, %d outbox rows; want 2 and 2", leads, rows)
			}
		})
	}
}

// The telemetry sink is down: the lead is created all the same, without attribution.
func TestLeadSurvivesTelemetryOutage(t *testing.T) {
	j := setup(t, "")
	j.pageview(t, time.Now(), "https://leadform.example/?utm_source=ads", "")
	j.tel.Close()
	code, body := j.post(t, url.Values{"email": {"ada@example.com"}, "anonymous_id": {visitor}})
	if code != http.StatusCreated {
		t.Fatalf("%d %v", code, body)
	}
	if e := j.event(t, body["lead_id"]); e.Source != "" || !strings.Contains(string(e.Payload), visitor) {
		t.Fatalf("event %+v %s", e, e.Payload)
	}
}

func TestPage(t *testing.T) {
	j := setup(t, "")
	resp, err := http.Get(j.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`action="/leads"`, `name="anonymous_id"`, `src="http://127.0.0.1:8080/t.js"`, `data-rung-form="lead"`, `data-site=`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("page lacks %s", want)
		}
	}
	resp, err = http.Get(j.srv.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /nope: %d", resp.StatusCode)
	}
}
