package snippet

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
)

// pageData is what the demo's templates are given.
type pageData struct {
	Script   string // t.js's versioned path
	Site     string
	Endpoint string
	Fields   []field // /demo/lead only
}

type field struct{ Name, Value string }

// The single-page app answers each of its routes with the same shell; demo.js shows
// the view the path names.
var shellRoutes = []string{"/demo", "/demo/", "/demo/pricing", "/demo/signup"}

// maxLeadBody bounds a /demo/lead submission.
const maxLeadBody = 64 << 10

func (h *Handler) prepareDemo() error {
	shell, err := h.render("assets/demo/index.html", h.page)
	if err != nil {
		return err
	}
	page := newAsset(shell, "text/html; charset=utf-8", cachePage)
	for _, p := range shellRoutes {
		h.demo[p] = &page
	}
	for name, ctype := range map[string]string{
		"demo.js":  "text/javascript; charset=utf-8",
		"demo.css": "text/css; charset=utf-8",
	} {
		b, err := assets.ReadFile("assets/demo/" + name)
		if err != nil {
			return fmt.Errorf("read embedded demo file %s: %w", name, err)
		}
		a := newAsset(b, ctype, cachePage)
		h.demo["/demo/"+name] = &a
	}
	h.lead, err = template.ParseFS(assets, "assets/demo/lead.html")
	if err != nil {
		return fmt.Errorf("parse embedded demo lead page: %w", err)
	}
	return nil
}

func (h *Handler) render(name string, data pageData) ([]byte, error) {
	t, err := template.ParseFS(assets, name)
	if err != nil {
		return nil, fmt.Errorf("parse embedded demo page %s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render demo page %s: %w", name, err)
	}
	return b.Bytes(), nil
}

func (h *Handler) serveDemo(w http.ResponseWriter, r *http.Request, p string) {
	if p == "/demo/lead" {
		h.serveLead(w, r)
		return
	}
	a, ok := h.demo[p]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h.serveAsset(w, r, a, a.cache)
}

// serveLead stands in for a business backend: it shows what the form posted, the
// hidden anonymous_id that t.js filled in among it. Stitching that id to the visit is
// package stitch's work, not this page's.
func (h *Handler) serveLead(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		http.Redirect(w, r, "/demo/signup", http.StatusSeeOther)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, HEAD, POST")
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLeadBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "read the form: "+err.Error(), http.StatusBadRequest)
		return
	}
	data := h.page
	for name, vs := range r.PostForm {
		data.Fields = append(data.Fields, field{Name: name, Value: strings.Join(vs, ", ")})
	}
	sort.Slice(data.Fields, func(i, j int) bool { return data.Fields[i].Name < data.Fields[j].Name })
	var b bytes.Buffer
	if err := h.lead.Execute(&b, data); err != nil {
		http.Error(w, "render the lead page", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.Write(b.Bytes())
}
