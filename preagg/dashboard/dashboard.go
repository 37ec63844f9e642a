// Package dashboard serves rung's answers over HTTP as standard-library handlers the
// collector mounts: the stats API (JSON, /v1/stats/...) and the dashboard pages (HTML,
// /), both read through stats.Queries. The pages are rendered on the server with
// html/template and inline SVG, with no script at all: every string that came from a
// visitor (paths, utm values, referrers, experiment and variant names) is escaped by the template,
// and the Content-Security-Policy forbids scripts besides.
package dashboard

import (
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/rungdev/rung/preagg/stats"
)

//go:embed templates/*.html
var templates embed.FS

// Dashboard serves the stats API and the dashboard pages. It is safe for concurrent
// use.
type Dashboard struct {
	q      *stats.Queries
	log    *slog.Logger
	now    func() time.Time
	page   *template.Template
	cookie string // Options.SessionCookie
}

// Options tunes the dashboard; the zero value works.
type Options struct {
	Now func() time.Time // the clock for default ranges; default time.Now
	// SessionCookie is the name of the cookie a browser signs in with, when the server
	// has signing in: a page asked for with it links to /signin, which signs out. ""
	// (an open server) shows no such link.
	SessionCookie string
}

// New returns the dashboard over q, logging failed queries to log.
func New(q *stats.Queries, log *slog.Logger, o Options) *Dashboard {
	if o.Now == nil {
		o.Now = time.Now
	}
	t := template.Must(template.New("").Funcs(funcs).ParseFS(templates, "templates/*.html"))
	return &Dashboard{q: q, log: log, now: o.Now, page: t, cookie: o.SessionCookie}
}

// signedIn reports whether r came from a browser signed in with the session cookie
// (the server in front checked it), so its pages offer a way to sign out.
func (d *Dashboard) signedIn(r *http.Request) bool {
	if d.cookie == "" {
		return false
	}
	_, err := r.Cookie(d.cookie)
	return err == nil
}

// API is the JSON stats API, to mount at the prefix "/v1/stats/":
//
//	GET /v1/stats/landing-pages?site=&from=&to=&utm_source=&utm_medium=&utm_campaign=&sort=&order=&limit=&offset=
//	GET /v1/stats/experiments?site=
//	GET /v1/stats/experiments/{id}?site=&from=&to=&control=&weights=control:1,b:1
//	GET /v1/stats/referrers?site=&path=&from=&to=&limit=
//	GET /v1/stats/trend?site=&from=&to=&utm_source=&utm_medium=&utm_campaign=&interval=hour|day
//	GET /v1/stats/sources?site=&from=&to=&utm_source=&utm_medium=&utm_campaign=&by=&limit=
//	GET /v1/stats/sites?from=&to=
//
// A bad parameter answers 400 with {"error": "..."}.
func (d *Dashboard) API() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stats/landing-pages", d.apiLanding)
	mux.HandleFunc("GET /v1/stats/experiments", d.apiExperiments)
	mux.HandleFunc("GET /v1/stats/experiments/{id}", d.apiExperiment)
	mux.HandleFunc("GET /v1/stats/referrers", d.apiReferrers)
	mux.HandleFunc("GET /v1/stats/trend", d.apiTrend)
	mux.HandleFunc("GET /v1/stats/sources", d.apiSources)
	mux.HandleFunc("GET /v1/stats/sites", d.apiSites)
	mux.HandleFunc("/v1/stats/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such stats endpoint; see /v1/stats/landing-pages, trend, sources, sites, referrers, experiments and experiments/{id}"})
	})
	return mux
}

// Pages is the dashboard, to mount at the prefix "/" (after every other mount, since
// it answers 404 for paths it does not know):
//
//	GET /                  landing pages with CVR bars and intervals, and the experiments
//	GET /experiments/{id}  each variant's lift with its intervals
//	GET /referrers         a page's pageviews by referrer (?path=, linked from each landing page)
func (d *Dashboard) Pages() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", d.landingPage)
	mux.HandleFunc("GET /experiments/{id}", d.experimentPage)
	mux.HandleFunc("GET /referrers", d.referrersPage)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not found", http.StatusNotFound)
	})
	return mux
}

func (d *Dashboard) apiLanding(w http.ResponseWriter, r *http.Request) {
	lq, err := landingQuery(r, d.now())
	if err == nil {
		var rep *stats.LandingReport
		if rep, err = d.q.LandingPages(r.Context(), lq); err == nil {
			writeJSON(w, http.StatusOK, rep)
			return
		}
	}
	d.apiError(w, r, err)
}

func (d *Dashboard) apiTrend(w http.ResponseWriter, r *http.Request) {
	tq, err := trendQuery(r, d.now())
	if err == nil {
		var rep *stats.TrendReport
		if rep, err = d.q.Trend(r.Context(), tq); err == nil {
			writeJSON(w, http.StatusOK, rep)
			return
		}
	}
	d.apiError(w, r, err)
}

func (d *Dashboard) apiSources(w http.ResponseWriter, r *http.Request) {
	sq, err := sourcesQuery(r, d.now())
	if err == nil {
		var rep *stats.SourcesReport
		if rep, err = d.q.Sources(r.Context(), sq); err == nil {
			writeJSON(w, http.StatusOK, rep)
			return
		}
	}
	d.apiError(w, r, err)
}

func (d *Dashboard) apiSites(w http.ResponseWriter, r *http.Request) {
	f, err := filterParams(r.URL.Query(), d.now())
	if err == nil {
		var sites []stats.Source
		if sites, err = d.q.Sites(r.Context(), f); err == nil {
			writeJSON(w, http.StatusOK, map[string]any{"sites": sites})
			return
		}
	}
	d.apiError(w, r, err)
}

func (d *Dashboard) apiExperiments(w http.ResponseWriter, r *http.Request) {
	list, err := d.q.Experiments(r.Context(), r.URL.Query().Get("site"))
	if err != nil {
		d.apiError(w, r, err)
		return
	}
	out := make([]experimentJSON, len(list))
	for i, e := range list {
		out[i] = experimentJSON{Experiment: e.Experiment, Visitors: e.Visitors,
			FirstExposure: time.UnixMilli(e.FirstMs).UTC(), LastExposure: time.UnixMilli(e.LastMs).UTC()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"experiments": out})
}

type experimentJSON struct {
	Experiment    string    `json:"experiment"`
	Visitors      int64     `json:"visitors"`
	FirstExposure time.Time `json:"first_exposure"`
	LastExposure  time.Time `json:"last_exposure"`
}

func (d *Dashboard) apiExperiment(w http.ResponseWriter, r *http.Request) {
	eq, err := experimentQuery(r, d.now())
	if err == nil {
		var rep *stats.ExperimentReport
		if rep, err = d.q.Experiment(r.Context(), eq); err == nil {
			writeJSON(w, http.StatusOK, rep)
			return
		}
	}
	d.apiError(w, r, err)
}

// apiError answers 400 for a query the caller got wrong, 500 (logged) otherwise.
func (d *Dashboard) apiError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, stats.ErrQuery) {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	d.log.Error("stats query failed", "path", r.URL.Path, "err", err)
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the query failed; see the server log"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
