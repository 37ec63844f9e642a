package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/sink/clickhouse"
	"github.com/rungdev/rung/sink/sqlite"
)

// runTail prints the newest stored signals: the quickest way to see that a tracker's
// signals arrive, and what rung made of them.
func runTail(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := newFlags("tail")
	ch := fs.String("clickhouse", "", "ClickHouse DSN; empty: the embedded SQLite sink in --data-dir")
	cluster := fs.String("clickhouse-cluster", "", "the cluster the tables are sharded over, as serve runs with")
	dataDir := fs.String("data-dir", "./rung-data", "directory of the embedded stores")
	n := fs.Int("n", 10, "how many signals")
	since := fs.Duration("since", 24*time.Hour, "look back this far")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if *n < 1 {
		return badUsage(fs, fmt.Errorf("-n %d: must be at least 1", *n))
	}
	to := time.Now().Add(time.Minute).UnixMilli()
	from := time.Now().Add(-*since).UnixMilli()
	var (
		got []schemas.Signal
		err error
	)
	if *ch != "" {
		s, oerr := clickhouse.Open(ctx, *ch, clickhouse.Options{Writers: 1, Cluster: *cluster}, metrics.NewSet())
		if oerr != nil {
			return oerr
		}
		defer s.Close()
		got, err = s.Signals(ctx, from, to)
	} else {
		s, oerr := sqlite.Open(ctx, filepath.Join(*dataDir, "telemetry.db"), metrics.NewSet())
		if oerr != nil {
			return oerr
		}
		defer s.Close()
		got, err = s.Signals(ctx, from, to)
	}
	if err != nil {
		return err
	}
	if len(got) > *n {
		got = got[len(got)-*n:]
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, s := range got {
			if err := enc.Encode(tailRow(s)); err != nil {
				return err
			}
		}
		return nil
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "RECEIVED\tTYPE\tSITE\tVISITOR\tPATH/NAME\tUTM SOURCE\tEVENT ID")
	for _, s := range got {
		what := s.Path
		switch s.Type {
		case schemas.TypeEvent:
			what = s.Name
		case schemas.TypeExposure:
			what = s.Experiment + "=" + s.Variant
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", time.UnixMilli(s.ReceivedAt).UTC().Format(time.RFC3339),
			s.Type, terminalSafe(s.Site), terminalSafe(s.AnonymousID), terminalSafe(what), terminalSafe(s.UTMSource), terminalSafe(s.EventID))
	}
	return w.Flush()
}

func tailRow(s schemas.Signal) map[string]any {
	m := map[string]any{
		"type": s.Type.String(), "received_at": s.ReceivedAt, "site": s.Site, "anonymous_id": s.AnonymousID,
		"event_id": s.EventID, "bot": s.Bot,
	}
	for k, v := range map[string]string{"url": s.URL, "path": s.Path, "referrer": s.Referrer, "utm_source": s.UTMSource,
		"utm_medium": s.UTMMedium, "utm_campaign": s.UTMCampaign, "utm_term": s.UTMTerm, "utm_content": s.UTMContent,
		"name": s.Name, "experiment": s.Experiment, "variant": s.Variant} {
		if v != "" {
			m[k] = v
		}
	}
	if s.HasValue {
		m["value"] = s.Value
	}
	if s.Props != "" {
		m["props"] = json.RawMessage(s.Props)
	}
	return m
}

// terminalSafe keeps visitor-supplied text from steering the terminal: control
// characters (escape sequences included) are shown as \x.. instead.
func terminalSafe(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return fmt.Sprintf("%q", s)
		}
	}
	return s
}
