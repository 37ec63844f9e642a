package dashboard

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/rungdev/rung/preagg/stats"
)

// filterParams reads the session filter from the URL: site, from, to, utm_source,
// utm_medium, utm_campaign.
func filterParams(v url.Values, now time.Time) (stats.Filter, error) {
	f := stats.Filter{Site: v.Get("site"), UTMSource: v.Get("utm_source"), UTMMedium: v.Get("utm_medium"),
		UTMCampaign: v.Get("utm_campaign")}
	var err error
	f.From, f.To, err = timeRange(v, now)
	return f, err
}

// landingQuery reads the landing-page query from the URL: the filter, and sort, order,
// limit, offset.
func landingQuery(r *http.Request, now time.Time) (stats.LandingQuery, error) {
	v := r.URL.Query()
	f, err := filterParams(v, now)
	lq := stats.LandingQuery{Filter: f, Sort: v.Get("sort"), Order: v.Get("order")}
	if err != nil {
		return lq, err
	}
	if lq.Limit, err = intParam(v, "limit"); err != nil {
		return lq, err
	}
	lq.Offset, err = intParam(v, "offset")
	return lq, err
}

// trendQuery reads the trend query from the URL: the filter, and interval.
func trendQuery(r *http.Request, now time.Time) (stats.TrendQuery, error) {
	v := r.URL.Query()
	tq := stats.TrendQuery{Interval: v.Get("interval")}
	var err error
	tq.Filter, err = filterParams(v, now)
	return tq, err
}

// sourcesQuery reads the sources query from the URL: the filter, and by, limit.
func sourcesQuery(r *http.Request, now time.Time) (stats.SourcesQuery, error) {
	v := r.URL.Query()
	sq := stats.SourcesQuery{By: v.Get("by")}
	var err error
	if sq.Filter, err = filterParams(v, now); err != nil {
		return sq, err
	}
	sq.Limit, err = intParam(v, "limit")
	return sq, err
}

// experimentQuery reads the experiment query: the {id} of the path, and site, from, to,
// control, weights.
func experimentQuery(r *http.Request, now time.Time) (stats.ExperimentQuery, error) {
	v := r.URL.Query()
	eq := stats.ExperimentQuery{ID: r.PathValue("id"), Site: v.Get("site"), Control: v.Get("control")}
	var err error
	if eq.From, eq.To, err = timeRange(v, now); err != nil {
		return eq, err
	}
	eq.Weights, err = stats.ParseWeights(v.Get("weights"))
	return eq, err
}

func timeRange(v url.Values, now time.Time) (from, to time.Time, err error) {
	if from, err = stats.ParseTime(v.Get("from"), now); err != nil {
		return from, to, fmt.Errorf("from: %w", err)
	}
	if to, err = stats.ParseTime(v.Get("to"), now); err != nil {
		return from, to, fmt.Errorf("to: %w", err)
	}
	return from, to, nil
}

func intParam(v url.Values, name string) (int, error) {
	s := v.Get(name)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q: want a whole number", stats.ErrQuery, name, s)
	}
	return n, nil
}
