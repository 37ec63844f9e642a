package snippet

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

//go:embed assets/t.js assets/demo
var assets embed.FS

// Options configures the handler. The zero value serves the demo as site "demo",
// posting to /collect on the origin that served t.js.
type Options struct {
	// Site is the data-site the demo pages give t.js. Default "demo".
	Site string
	// Endpoint is the data-endpoint the demo pages give t.js: an absolute http(s) URL
	// or a path. Empty: t.js posts to /collect on the origin it was loaded from.
	Endpoint string
}

// sitePattern is the site rule of schemas/json/defs.v1.json.
var sitePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

func (o *Options) validate() error {
	if o.Site == "" {
		o.Site = "demo"
	}
	if len(o.Site) > 100 || !sitePattern.MatchString(o.Site) {
		return fmt.Errorf("%w: site %q: want up to 100 of A-Z a-z 0-9 . _ : -, starting with a letter or digit", ErrOptions, o.Site)
	}
	if o.Endpoint != "" {
		u, err := url.Parse(o.Endpoint)
		switch {
		case err != nil:
			return fmt.Errorf("%w: endpoint %q: %v", ErrOptions, o.Endpoint, err)
		case u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/"):
		case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
		default:
			return fmt.Errorf("%w: endpoint %q: want an absolute http(s) URL or a path starting with /", ErrOptions, o.Endpoint)
		}
	}
	return nil
}

// Handler serves t.js and the demo site. It is immutable once made and safe for
// concurrent use. Mount it on every path Paths returns.
type Handler struct {
	script    asset  // minified t.js
	versioned string // "/t.<hash>.js"
	demo      map[string]*asset
	lead      *template.Template
	page      pageData
}

// asset is a response prepared at start: the body, its gzipped form, and headers.
type asset struct {
	body, gz []byte
	ctype    string
	cache    string
	etag     string // strong, of body; the gzipped form gets its own
}

// Cache lifetimes. The versioned URL never changes content, so it may be kept for a
// year; /t.js must pick up a new release within the hour.
const (
	cacheVersioned = "public, max-age=31536000, immutable"
	cacheScript    = "public, max-age=3600"
	cachePage      = "no-cache"
)

// New prepares every response: it minifies, hashes and gzips t.js and renders the demo
// pages. An error is a bad Options value (ErrOptions) or a defect in the embedded files.
func New(opts Options) (*Handler, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	src, err := assets.ReadFile("assets/t.js")
	if err != nil {
		return nil, fmt.Errorf("read embedded t.js: %w", err)
	}
	js, err := minify(src)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		script:    newAsset(js, "text/javascript; charset=utf-8", cacheScript),
		versioned: "/t." + contentHash(js) + ".js",
		demo:      make(map[string]*asset),
	}
	h.page = pageData{Script: h.versioned, Site: opts.Site, Endpoint: opts.Endpoint}
	if err := h.prepareDemo(); err != nil {
		return nil, err
	}
	return h, nil
}

func newAsset(body []byte, ctype, cache string) asset {
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, gzip.BestCompression) // the level is valid
	w.Write(body)
	w.Close()
	return asset{body: body, gz: z.Bytes(), ctype: ctype, cache: cache, etag: `"` + contentHash(body) + `"`}
}

// contentHash names content: 12 hex digits (48 bits) of its SHA-256.
func contentHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// ScriptPath is t.js's versioned path, "/t.<hash>.js", which may be cached forever.
func (h *Handler) ScriptPath() string { return h.versioned }

// Paths lists what to mount: exact paths, and one prefix ending in "/".
func (h *Handler) Paths() []string {
	return []string{"/t.js", h.versioned, "/demo", "/demo/"}
}

// Size reports t.js as served: minified bytes, and gzipped bytes.
func (h *Handler) Size() (minified, gzipped int) { return len(h.script.body), len(h.script.gz) }

// ServeHTTP answers t.js, its versioned path and the demo.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == "/t.js":
		h.serveAsset(w, r, &h.script, cacheScript)
	case p == h.versioned:
		h.serveAsset(w, r, &h.script, cacheVersioned)
	case p == "/demo" || strings.HasPrefix(p, "/demo/"):
		h.serveDemo(w, r, p)
	default:
		// An old /t.<hash>.js included: serving today's content under yesterday's
		// immutable name would poison caches.
		http.NotFound(w, r)
	}
}

func (h *Handler) serveAsset(w http.ResponseWriter, r *http.Request, a *asset, cache string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	body, etag := a.body, a.etag
	hd := w.Header()
	hd.Set("Vary", "Accept-Encoding")
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body, etag = a.gz, strings.TrimSuffix(a.etag, `"`)+`-gz"`
		hd.Set("Content-Encoding", "gzip")
	}
	hd.Set("Content-Type", a.ctype)
	hd.Set("Cache-Control", cache)
	hd.Set("ETag", etag)
	hd.Set("X-Content-Type-Options", "nosniff")
	// A site may load t.js with crossorigin and integrity (SRI), or under COEP.
	hd.Set("Access-Control-Allow-Origin", "*")
	hd.Set("Cross-Origin-Resource-Policy", "cross-origin")
	if etagMatch(r.Header.Get("If-None-Match"), etag) {
		hd.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

// acceptsGzip reads an Accept-Encoding header: gzip (or *) listed without q=0.
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(part, ";")
		name = strings.TrimSpace(name)
		if !strings.EqualFold(name, "gzip") && name != "*" {
			continue
		}
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if k, v, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		return q > 0
	}
	return false
}

func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
