package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rungdev/rung/preagg"
	"github.com/rungdev/rung/sink"
)

// TestReconcileSite: --site compares that site's rollups alone. A stray rollup row of
// another site fails the whole check and that site's, never this one's.
func TestReconcileSite(t *testing.T) {
	dir, st := seedSQLite(t)
	stray := sink.LandingCell{LandingKey: sink.LandingKey{Site: "other.example", HourMs: statsBase.UnixMilli(), LandingPath: "/stray"},
		Cell: 1, Sessions: 2, Version: 1}
	if err := st.Write(context.Background(), &sink.Batch{Landing: []sink.LandingCell{stray}}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"RUNG_DATA_DIR": dir}
	rng := []string{"--from", "2024-03-01", "--to", "2024-03-02"}
	for _, tt := range []struct {
		site     string
		want     string // in the summary line
		mismatch bool
	}{
		{"", "compared 375 sessions, 5 landing hours and 300 first exposures", true},
		{"shop.example", "compared 375 sessions, 5 landing hours and 300 first exposures", false},
		{"other.example", "compared 0 sessions, 0 landing hours and 0 first exposures", true},
	} {
		out, err := runCmd(t, runReconcile, env, append([]string{"--site", tt.site}, rng...)...)
		if errors.Is(err, preagg.ErrMismatch) != tt.mismatch || (err != nil && !tt.mismatch) {
			t.Errorf("--site %q: err %v, want a mismatch: %v\n%s", tt.site, err, tt.mismatch, out)
		}
		if !strings.Contains(out, tt.want) || strings.Contains(out, "/stray") != tt.mismatch {
			t.Errorf("--site %q: want %q, the stray row only where it belongs:\n%s", tt.site, tt.want, out)
		}
		if tt.site != "" && !strings.Contains(out, "lead_created not compared") {
			t.Errorf("--site %q compared the leads, which carry no site:\n%s", tt.site, out)
		}
	}
}
