package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/preagg/stats"
	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink"
	"github.com/rungdev/rung/sink/clickhouse"
	"github.com/rungdev/rung/sink/sqlite"
)

var statsBase = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)

// seedStats runs 300 visitors through the sessionizer into w: pageviews on /a or /b,
// goals, a hero experiment, some visitors coming back after the session timeout.
func seedStats(t *testing.T, w preagg.Writer) {
	t.Helper()
	a, err := preagg.New(preagg.Config{}, metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	var sigs []schemas.Signal
	at := func(i int, d time.Duration) int64 { return statsBase.Add(time.Duration(i)*time.Second + d).UnixMilli() }
	for i := 0; i < 300; i++ {
		anon := fmt.Sprintf("v%03d", i)
		path := []string{"/a", "/b"}[i%2]
		sigs = append(sigs,
			schemas.Signal{Type: schemas.TypePageview, Site: "shop.example", AnonymousID: anon, ReceivedAt: at(i, 0),
				EventID: anon + "-1", Path: path, URL: "https://shop.example" + path, UTMSource: []string{"", "google"}[i%3%2]},
			schemas.Signal{Type: schemas.TypeExposure, Site: "shop.example", AnonymousID: anon, ReceivedAt: at(i, time.Second),
				EventID: anon + "-2", Experiment: "hero", Variant: []string{"control", "b"}[i%2]})
		if i%5 == 0 || i%7 == 0 {
			sigs = append(sigs, schemas.Signal{Type: schemas.TypeEvent, Site: "shop.example", AnonymousID: anon,
				ReceivedAt: at(i, time.Minute), EventID: anon + "-3", Name: "form_submitted"})
		}
		if i%4 == 0 { // back after the timeout: a second session
			sigs = append(sigs, schemas.Signal{Type: schemas.TypePageview, Site: "shop.example", AnonymousID: anon,
				ReceivedAt: at(i, time.Hour), EventID: anon + "-4", Path: "/b", URL: "https://shop.example/b"})
		}
	}
	flush := a.FlushTo(w)
	for i := 0; i < len(sigs); i += 100 {
		if err := flush(context.Background(), sigs[i:min(i+100, len(sigs))]); err != nil {
			t.Fatal(err)
		}
	}
}

func seedSQLite(t *testing.T) (string, *sqlite.SQLite) {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "telemetry.db"), metrics.NewSet())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	seedStats(t, st)
	return dir, st
}

func envMap(m map[string]string) environ {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func runCmd(t *testing.T, f func(context.Context, []string, environ, io.Writer) error, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := f(context.Background(), args, envMap(env), &out)
	return out.String(), err
}

func TestQueryCommands(t *testing.T) {
	dir, st := seedSQLite(t)
	q := stats.NewQueries(st, stats.Options{})
	ctx := context.Background()
	rng := []string{"--from", "2024-03-01", "--to", "2024-03-02"}

	want, err := q.LandingPages(ctx, stats.LandingQuery{Filter: stats.Filter{Site: "shop.example", From: statsBase, To: statsBase.Add(24 * time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, runQuery, map[string]string{"RUNG_DATA_DIR": dir}, append([]string{"landing-pages", "--site", "shop.example", "--json"}, rng...)...)
	if err != nil {
		t.Fatalf("query landing-pages --json: %v\n%s", err, out)
	}
	var got stats.LandingReport
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Sessions != want.Sessions || len(got.Pages) != 2 || got.Pages[0] != want.Pages[0] || got.Pages[1] != want.Pages[1] {
		t.Errorf("--json: %+v\nwant %+v", got, want)
	}
	out, err = runCmd(t, runQuery, nil, append([]string{"landing-pages", "--data-dir", dir, "--sort", "path"}, rng...)...)
	if err != nil {
		t.Fatalf("query landing-pages: %v", err)
	}
	for _, p := range want.Pages {
		line := fmt.Sprintf("%s %d %d %.1f%%", p.Path, p.Sessions, p.Converted, p.CVR*100)
		if !strings.Contains(strings.Join(strings.Fields(out), " "), line) {
			t.Errorf("the table lacks %q:\n%s", line, out)
		}
	}
	if !strings.Contains(out, "on 2 landing pages of every site") {
		t.Errorf("the summary:\n%s", out)
	}

	out, err = runCmd(t, runQuery, nil, append([]string{"experiment", "hero", "--data-dir", dir, "--weights", "control:1,b:1"}, rng...)...)
	if err != nil {
		t.Fatalf("query experiment: %v\n%s", err, out)
	}
	norm := strings.Join(strings.Fields(out), " ")
	for _, s := range []string{"experiment hero: 300 visitors", "control (control) 150", " b 150 ", "sample ratio: χ² 0.00 (df 1), p = 1: ok"} {
		if !strings.Contains(norm, s) {
			t.Errorf("query experiment lacks %q:\n%s", s, out)
		}
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "say what to query"},
		{[]string{"experiment"}, "name the experiment"},
		{[]string{"experiment", "--json"}, "name the experiment"},
		{[]string{"funnels"}, "unknown query"},
		{[]string{"landing-pages", "--data-dir", dir, "--from", "yesterday"}, "--from"},
		{[]string{"landing-pages", "--data-dir", dir, "--sort", "bounce"}, "sort"},
		{[]string{"landing-pages", "--data-dir", filepath.Join(dir, "nothing")}, "no telemetry store"},
		{[]string{"landing-pages", "--clickhouse", "http://x:8123"}, "native protocol"},
		{[]string{"experiment", "hero", "--data-dir", dir, "--weights", "control"}, "--weights"},
		{[]string{"experiment", "hero", "--data-dir", dir, "--control", "nobody"}, "nobody"},
	} {
		if _, err := runCmd(t, runQuery, nil, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("rung query %q: %v, want an error naming %q", c.args, err, c.want)
		}
	}
}

func TestReconcileCommand(t *testing.T) {
	dir, st := seedSQLite(t)
	rng := []string{"--from", "2024-03-01", "--to", "2024-03-02"}
	out, err := runCmd(t, runReconcile, map[string]string{"RUNG_DATA_DIR": dir}, rng...)
	if err != nil || !strings.Contains(out, "compared 375 sessions") || !strings.Contains(out, ": 0 mismatches") {
		t.Fatalf("reconcile: %v\n%s", err, out)
	}
	// The wrong rules make the recomputation disagree: every session that came back
	// after an hour is one session under a two-hour timeout.
	out, err = runCmd(t, runReconcile, map[string]string{"RUNG_DATA_DIR": dir, "RUNG_SESSION_TIMEOUT": "2h"}, rng...)
	if !errors.Is(err, preagg.ErrMismatch) || !strings.Contains(out, "session shop.example/v000@2024-03-01T01:00:00.000Z: pre-rolled") {
		t.Errorf("reconcile with a 2h timeout: %v\n%s", err, out)
	}
	// A stray row is one mismatch, printed.
	stray := sink.LandingCell{LandingKey: sink.LandingKey{Site: "shop.example", HourMs: statsBase.UnixMilli(), LandingPath: "/stray\x1b[31m"},
		Cell: 1, Sessions: 2, Version: 1}
	if err := st.Write(context.Background(), &sink.Batch{Landing: []sink.LandingCell{stray}}); err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, runReconcile, nil, append([]string{"--data-dir", dir}, rng...)...)
	if !errors.Is(err, preagg.ErrMismatch) || !strings.Contains(out, `landing_hour shop.example 2024-03-01T00:00:00.000Z "/stray\x1b[31m"`) ||
		!strings.Contains(out, ": 1 mismatches") || strings.Contains(out, "\x1b") {
		t.Errorf("reconcile after a stray row: %v\n%q", err, out)
	}
	out, err = runCmd(t, runReconcile, nil, append([]string{"--data-dir", dir, "--json"}, rng...)...)
	var audit preagg.Audit
	if jerr := json.Unmarshal([]byte(out), &audit); jerr != nil || len(audit.Mismatches) != 1 || err == nil {
		t.Errorf("reconcile --json: %v %v\n%s", err, jerr, out)
	}
	if _, err := runCmd(t, runReconcile, nil, "--data-dir", dir, "--goals", " , "); err == nil || !strings.Contains(err.Error(), "goal") {
		t.Errorf("reconcile with no goals: %v", err)
	}
}

// The same through ClickHouse, in a database of the test's own.
func TestReconcileClickHouse(t *testing.T) {
	dsn := testClickHouseDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := clickhouse.Open(ctx, dsn, clickhouse.Options{}, metrics.NewSet())
	if err != nil {
		t.Fatalf("ClickHouse is required for this test (start it with .ci/services): %v", err)
	}
	t.Cleanup(func() {
		if err := st.DropDatabase(context.Background()); err != nil {
			t.Errorf("drop test database: %v", err)
		}
		st.Close()
	})
	seedStats(t, st)
	out, err := runCmd(t, runReconcile, map[string]string{"RUNG_CLICKHOUSE": dsn}, "--from", "2024-03-01", "--to", "2024-03-02")
	if err != nil || !strings.Contains(out, "compared 375 sessions") || !strings.Contains(out, ": 0 mismatches") {
		t.Fatalf("reconcile: %v\n%s", err, out)
	}
	out, err = runCmd(t, runQuery, map[string]string{"RUNG_CLICKHOUSE": dsn}, "experiment", "hero", "--json")
	var rep stats.ExperimentReport
	if err != nil || json.Unmarshal([]byte(out), &rep) != nil || rep.Visitors != 300 {
		t.Errorf("query experiment on ClickHouse: %v\n%s", err, out)
	}
}
