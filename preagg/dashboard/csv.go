package dashboard

import (
	"bytes"
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rungdev/rung/preagg/stats"
)

// CSV export: each table of a page is at its own URL plus ?format=csv&table=NAME, so it
// sits behind the same access as the page. Numbers are written plain (no thousands
// separators, rates as fractions), as the API writes them.

// landingCSV answers one of the overview's tables as CSV.
func (d *Dashboard) landingCSV(w http.ResponseWriter, r *http.Request, v *landingView) {
	var rows [][]string
	rate := func(c stats.Counts) []string {
		return []string{itoa64(c.Sessions), itoa64(c.Converted), ftoa(c.CVR), ftoa(c.CI.Low), ftoa(c.CI.High)}
	}
	counts := []string{"sessions", "converted", "cvr", "cvr_low", "cvr_high"}
	table := r.URL.Query().Get("table")
	switch table {
	case "trend":
		rows = append(rows, append([]string{"start"}, counts...))
		for _, p := range v.Trend.Points {
			rows = append(rows, append([]string{p.Start.Format(time.RFC3339)}, rate(p.Counts)...))
		}
	case "sources":
		rows = append(rows, append([]string{v.Sources.By}, counts...))
		for _, s := range v.Sources.Sources {
			rows = append(rows, append([]string{s.Value}, rate(s.Counts)...))
		}
	case "landing":
		rows = append(rows, append([]string{"site", "landing_path"}, counts...))
		for _, p := range v.Report.Pages {
			rows = append(rows, append([]string{p.Site, p.Path}, rate(stats.Counts{Sessions: p.Sessions, Converted: p.Converted, CVR: p.CVR, CI: p.CI})...))
		}
	case "experiments":
		exps, err := d.q.Experiments(r.Context(), v.Report.Site)
		if err != nil {
			d.serverError(w, r, err)
			return
		}
		rows = append(rows, []string{"experiment", "visitors", "first_exposure", "last_exposure"})
		for _, e := range exps {
			rows = append(rows, []string{e.Experiment, itoa64(e.Visitors),
				time.UnixMilli(e.FirstMs).UTC().Format(time.RFC3339), time.UnixMilli(e.LastMs).UTC().Format(time.RFC3339)})
		}
	default:
		http.Error(w, "table: want trend, sources, landing or experiments", http.StatusBadRequest)
		return
	}
	writeCSV(w, "rung-"+table+".csv", rows)
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// writeCSV answers rows as a CSV download. A cell a visitor may have written (a path,
// a utm value, a referrer) that starts like a spreadsheet formula is prefixed with a
// quote, so opening the file cannot run it.
func writeCSV(w http.ResponseWriter, name string, rows [][]string) {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	for _, row := range rows {
		for i, c := range row {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				if _, err := strconv.ParseFloat(c, 64); err != nil {
					row[i] = "'" + c
				}
			}
		}
		cw.Write(row)
	}
	cw.Flush()
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
}
