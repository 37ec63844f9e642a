package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/rungdev/rung/schemas"
	"github.com/rungdev/rung/stitch"
	"github.com/rungdev/rung/stitch/sqldb"
)

// attributor is where the app reads a visitor's attribution: a stitch.Lookup over the
// telemetry sink, or a stitch.Client talking to rung over HTTP.
type attributor interface {
	Attribution(ctx context.Context, anonymousID string) (stitch.Attribution, error)
}

// app is a business backend: it owns the leads table and writes lead_created through
// rung's outbox in the transaction that creates the lead.
type app struct {
	db       *sql.DB
	dialect  sqldb.Dialect
	schemas  *schemas.Registry // validates lead_created before it is written
	attr     attributor
	notify   func() // wakes the relay after a commit; may be nil
	log      *slog.Logger
	now      func() time.Time
	rungURL  string // where the page's script posts signals, e.g. http://127.0.0.1:8080
	site     string
	pageTmpl *template.Template
}

// migrateLeads creates the app's own table.
func migrateLeads(ctx context.Context, db *sql.DB, d sqldb.Dialect) error {
	_, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS leads (
	id           TEXT NOT NULL PRIMARY KEY,
	email        TEXT NOT NULL,
	name         TEXT NOT NULL DEFAULT '',
	anonymous_id TEXT NOT NULL DEFAULT '',
	amount       `+d.FloatType()+`,
	created_at   `+d.TimeType()+` NOT NULL
)`)
	if err != nil {
		return fmt.Errorf("create leads table: %w", err)
	}
	return nil
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("POST /leads", a.createLead)
	return mux
}

// leadForm is what the form posts.
type leadForm struct {
	Email, Name, AnonymousID string
	Amount                   *float64
}

func parseForm(r *http.Request) (leadForm, error) {
	if err := r.ParseForm(); err != nil {
		return leadForm{}, fmt.Errorf("form: %w", err)
	}
	f := leadForm{Email: strings.TrimSpace(r.PostForm.Get("email")), Name: strings.TrimSpace(r.PostForm.Get("name")),
		AnonymousID: strings.TrimSpace(r.PostForm.Get("anonymous_id"))}
	if addr, err := mail.ParseAddress(f.Email); err != nil || addr.Address != f.Email || len(f.Email) > 254 {
		return f, fmt.Errorf("email %q is not an email address", f.Email)
	}
	if utf8.RuneCountInString(f.Name) > 200 {
		return f, fmt.Errorf("name is longer than 200 characters")
	}
	if v := strings.TrimSpace(r.PostForm.Get("amount")); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x < 0 || x > 1e15 || x != x {
			return f, fmt.Errorf("amount %q must be a number from 0 to 1e15", v)
		}
		f.Amount = &x
	}
	return f, nil
}

// createLead turns the form into a lead and its lead_created, in one transaction.
func (a *app) createLead(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, err := parseForm(r)
	if err != nil {
		a.reply(w, r, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	// Telemetry is lossy and must never cost a lead: a malformed id or an unreadable sink
	// gives a lead without attribution, logged, rather than no lead.
	attr, err := a.attr.Attribution(ctx, f.AnonymousID)
	if err != nil {
		a.log.Warn("lead created without attribution", "anonymous_id", f.AnonymousID, "err", err)
		if errors.Is(err, stitch.ErrInvalidAnonymousID) {
			f.AnonymousID = ""
		}
		attr = stitch.Attribution{AnonymousID: f.AnonymousID}
	}
	now := a.now()
	leadID := uuid.Must(uuid.NewV7()).String()
	ev := stitch.NewLeadCreated(leadID, attr, now)
	ev.Amount = f.Amount
	err = sqldb.InTx(ctx, a.db, func(tx *sql.Tx) error {
		var amount any
		if f.Amount != nil {
			amount = *f.Amount
		}
		if _, err := tx.ExecContext(ctx, a.dialect.Rebind(`INSERT INTO leads (id, email, name, anonymous_id, amount, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
			leadID, f.Email, f.Name, f.AnonymousID, amount, a.dialect.Time(now)); err != nil {
			return fmt.Errorf("insert lead: %w", err)
		}
		return stitch.WriteLeadCreated(ctx, tx, a.dialect, a.schemas, ev)
	})
	if err != nil {
		a.log.Error("create lead", "err", err)
		a.reply(w, r, http.StatusInternalServerError, map[string]string{"error": "the lead could not be saved; please try again"})
		return
	}
	if a.notify != nil {
		a.notify()
	}
	a.reply(w, r, http.StatusCreated, map[string]string{"lead_id": leadID, "event_id": ev.EventID})
}

// reply answers JSON to API clients and a small page to browsers.
func (a *app) reply(w http.ResponseWriter, r *http.Request, status int, body map[string]string) {
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	msg := "Thank you, we will be in touch."
	if e, ok := body["error"]; ok {
		msg = "Sorry: " + e
	}
	fmt.Fprintf(w, "<!doctype html><meta charset=utf-8><title>Lead</title><p>%s</p><p><a href=\"/\">Back</a></p>", template.HTMLEscapeString(msg))
}

func (a *app) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := a.pageTmpl.Execute(w, map[string]string{"Rung": a.rungURL, "Site": a.site}); err != nil {
		a.log.Error("render page", "err", err)
	}
}

// pageHTML is the landing page. rung's t.js sends the page view and, on submit of the
// marked form, form_submitted (the lossy side), and fills the form's anonymous_id field
// so the lead it posts can be stitched to the visit (the durable side).
const pageHTML = `<!doctype html>
<html lang="en"><meta charset="utf-8"><title>Spring offer</title>
<script defer src="{{.Rung}}/t.js" data-site="{{.Site}}"></script>
<h1>Spring offer</h1>
<form id="lead" method="post" action="/leads" data-rung-form="lead">
  <input type="hidden" name="anonymous_id">
  <label>Email <input type="email" name="email" required></label>
  <label>Name <input name="name"></label>
  <label>Budget <input name="amount" inputmode="decimal"></label>
  <button>Get in touch</button>
</form>
</html>`
