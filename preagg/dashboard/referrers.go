package dashboard

import (
	"net/http"
	"time"

	"github.com/rungdev/rung/preagg/stats"
)

// referrerQuery reads the referrer query from the URL: site, path, from, to, limit.
func referrerQuery(r *http.Request, now time.Time) (stats.ReferrerQuery, error) {
	v := r.URL.Query()
	rq := stats.ReferrerQuery{Site: v.Get("site"), Path: v.Get("path")}
	var err error
	if rq.From, rq.To, err = timeRange(v, now); err != nil {
		return rq, err
	}
	rq.Limit, err = intParam(v, "limit")
	return rq, err
}

func (d *Dashboard) apiReferrers(w http.ResponseWriter, r *http.Request) {
	rq, err := referrerQuery(r, d.now())
	if err == nil {
		var rep *stats.ReferrerReport
		if rep, err = d.q.Referrers(r.Context(), rq); err == nil {
			writeJSON(w, http.StatusOK, rep)
			return
		}
	}
	d.apiError(w, r, err)
}

type referrerView struct {
	Title   string
	Back    string
	SignOut bool
	Path    string
	Report  *stats.ReferrerReport
	Error   string
}

// referrersPage lists where a page's visitors came from. Referrers are whatever the
// visitor's browser (or anyone posting to /collect) sent: shown as text, never as links.
func (d *Dashboard) referrersPage(w http.ResponseWriter, r *http.Request) {
	v := &referrerView{Title: "Referrers", Path: r.URL.Query().Get("path"),
		Back: newLinks(r, "site", "from", "to").to("/"), SignOut: d.signedIn(r)}
	rq, err := referrerQuery(r, d.now())
	if err == nil {
		v.Report, err = d.q.Referrers(r.Context(), rq)
	}
	if d.queryFailed(w, r, err, "referrers.html", v, &v.Error) {
		return
	}
	d.render(w, http.StatusOK, "referrers.html", v)
}
