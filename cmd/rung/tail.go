package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/rungdev/rung/schemas"
)

// tailConfig is what `rung tail` is asked for.
type tailConfig struct {
	at     sinkAt
	n      int
	since  time.Duration
	asJSON bool
}

// runTail prints the newest stored signals: the quickest way to see that a tracker's
// signals arrive, and what rung made of them.
func runTail(ctx context.Context, args []string, env environ, stdout io.Writer) error {
	fs := newFlags("tail")
	var c tailConfig
	fs.StringVar(&c.at.ClickHouse, "clickhouse", "", "ClickHouse DSN; empty: the embedded SQLite sink in --data-dir")
	fs.StringVar(&c.at.Cluster, "clickhouse-cluster", "", "the cluster the tables are sharded over, as serve runs with")
	fs.StringVar(&c.at.DataDir, "data-dir", "./rung-data", "directory of the embedded stores")
	fs.IntVar(&c.n, "n", 10, "how many signals")
	fs.DurationVar(&c.since, "since", 24*time.Hour, "look back this far")
	fs.BoolVar(&c.asJSON, "json", false, "one JSON object per line")
	if err := parseFlags(fs, args, env); err != nil {
		return err
	}
	if c.n < 1 {
		return badUsage(fs, fmt.Errorf("-n %d: must be at least 1", c.n))
	}
	return tail(ctx, &c, stdout, metrics.NewSet())
}

// tail reads the store read-only and asks it for the newest n signals alone; set
// receives the store's metrics (its rows read).
func tail(ctx context.Context, c *tailConfig, stdout io.Writer, set *metrics.Set) error {
	st, err := openSink(ctx, c.at, true, set)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now()
	got, err := st.Newest(ctx, now.Add(-c.since).UnixMilli(), now.Add(time.Minute).UnixMilli(), c.n)
	if err != nil {
		return err
	}
	if c.asJSON {
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
