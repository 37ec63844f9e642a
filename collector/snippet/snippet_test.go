package snippet

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
)

// maxGzipped is the budget for t.js as served, gzipped.
const maxGzipped = 1536

func newHandler(t *testing.T, opts Options) *Handler {
	t.Helper()
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return h
}

func TestScriptSize(t *testing.T) {
	h := newHandler(t, Options{})
	src, err := assets.ReadFile("assets/t.js")
	if err != nil {
		t.Fatal(err)
	}
	min, gz := h.Size()
	t.Logf("t.js: source %d bytes, minified %d bytes, gzipped %d bytes (limit %d)", len(src), min, gz, maxGzipped)
	if gz > maxGzipped {
		t.Errorf("t.js is %d bytes gzipped, over the %d-byte budget", gz, maxGzipped)
	}
	// The README's size table states today's figures.
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{
		fmt.Sprintf("| source, `assets/t.js`, with comments | %s |", thousands(len(src))),
		fmt.Sprintf("| served | %s |", thousands(min)),
	} {
		if !bytes.Contains(readme, []byte(row)) {
			t.Errorf("README.md lacks the row %q: update its size table", row)
		}
	}
	// The gzipped size moves by a few bytes with the Go release's compress/flate; the
	// README states it as built with the Go rung ships with, so allow a little slack.
	const gzRow = "| served, gzipped | "
	i := bytes.Index(readme, []byte(gzRow))
	stated := -1
	if i >= 0 {
		rest, _, _ := strings.Cut(string(readme[i+len(gzRow):]), " |")
		stated, _ = strconv.Atoi(strings.ReplaceAll(rest, ",", ""))
	}
	if d := stated - gz; stated < 0 || d > 16 || d < -16 {
		t.Errorf("README.md's row %q states %d bytes; today's is %d: update its size table", gzRow, stated, gz)
	}
	// The gzipped bytes served must be the minified script.
	zr, err := gzip.NewReader(bytes.NewReader(h.script.gz))
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(back, h.script.body) {
		t.Fatalf("gzipped t.js does not unpack to the minified script (err %v)", err)
	}
}

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Result()
}

func TestServeScript(t *testing.T) {
	h := newHandler(t, Options{})
	if !strings.HasPrefix(h.ScriptPath(), "/t.") || len(h.ScriptPath()) != len("/t.123456789abc.js") {
		t.Fatalf("ScriptPath() = %q, want /t.<12 hex digits>.js", h.ScriptPath())
	}
	tests := []struct {
		name, method, path string
		hdr                map[string]string
		status             int
		cache, encoding    string
		body               []byte
	}{
		{"plain", "GET", "/t.js", nil, 200, cacheScript, "", h.script.body},
		{"gzip", "GET", "/t.js", map[string]string{"Accept-Encoding": "gzip, deflate, br"}, 200, cacheScript, "gzip", h.script.gz},
		{"gzip refused", "GET", "/t.js", map[string]string{"Accept-Encoding": "gzip;q=0, br"}, 200, cacheScript, "", h.script.body},
		{"versioned", "GET", h.ScriptPath(), map[string]string{"Accept-Encoding": "gzip"}, 200, cacheVersioned, "gzip", h.script.gz},
		{"head", "HEAD", "/t.js", nil, 200, cacheScript, "", nil},
		{"not modified", "GET", "/t.js", map[string]string{"If-None-Match": h.script.etag}, 304, cacheScript, "", nil},
		{"other version", "GET", "/t.0123456789ab.js", nil, 404, "", "", nil},
		{"post", "POST", "/t.js", nil, 405, "", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := get(t, h, tc.method, tc.path, tc.hdr)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", res.StatusCode, tc.status, body)
			}
			if tc.status != 200 && tc.status != 304 {
				return
			}
			if got := res.Header.Get("Cache-Control"); got != tc.cache {
				t.Errorf("Cache-Control %q, want %q", got, tc.cache)
			}
			if got := res.Header.Get("Content-Encoding"); got != tc.encoding {
				t.Errorf("Content-Encoding %q, want %q", got, tc.encoding)
			}
			if tc.status == 200 && !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
				t.Errorf("Content-Type %q", res.Header.Get("Content-Type"))
			}
			if tc.status == 200 && res.Header.Get("Vary") != "Accept-Encoding" {
				t.Errorf("Vary %q, want Accept-Encoding", res.Header.Get("Vary"))
			}
			if tc.method == "GET" && tc.status == 200 && !bytes.Equal(body, tc.body) {
				t.Errorf("body of %d bytes, want the %d prepared bytes", len(body), len(tc.body))
			}
		})
	}
}

func TestServeDemo(t *testing.T) {
	h := newHandler(t, Options{Site: "demo.example", Endpoint: "https://collect.example/collect"})
	for _, p := range []string{"/demo", "/demo/", "/demo/pricing", "/demo/signup"} {
		res := get(t, h, "GET", p, nil)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != 200 {
			t.Fatalf("GET %s: status %d", p, res.StatusCode)
		}
		want := `<script defer src="` + h.ScriptPath() + `" data-site="demo.example" data-endpoint="https://collect.example/collect"></script>`
		if !bytes.Contains(body, []byte(want)) {
			t.Fatalf("GET %s: page lacks %s", p, want)
		}
		if !bytes.Contains(body, []byte(`data-rung-form="lead"`)) {
			t.Fatalf("GET %s: page lacks the marked form", p)
		}
	}
	for _, p := range []string{"/demo/demo.js", "/demo/demo.css"} {
		if res := get(t, h, "GET", p, nil); res.StatusCode != 200 {
			t.Fatalf("GET %s: status %d", p, res.StatusCode)
		}
	}
	if res := get(t, h, "GET", "/demo/nothing", nil); res.StatusCode != 404 {
		t.Fatalf("GET /demo/nothing: status %d, want 404", res.StatusCode)
	}
	if res := get(t, h, "GET", "/demo/lead", nil); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/demo/signup" {
		t.Fatalf("GET /demo/lead: status %d to %q, want 303 to /demo/signup", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestLeadShowsFieldsEscaped(t *testing.T) {
	h := newHandler(t, Options{})
	form := url.Values{"name": {"<b>Ada</b>"}, "email": {"ada@example.com"}, "anonymous_id": {"1764-1-2-3-4"}}
	r := httptest.NewRequest("POST", "/demo/lead", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	body := w.Body.String()
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, body)
	}
	for _, want := range []string{
		`<td data-field="anonymous_id">1764-1-2-3-4</td>`,
		`<td data-field="email">ada@example.com</td>`,
		`&lt;b&gt;Ada&lt;/b&gt;`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("lead page lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "<b>Ada") {
		t.Error("lead page echoes markup unescaped")
	}

	big := strings.NewReader("name=" + strings.Repeat("x", maxLeadBody+1))
	r = httptest.NewRequest("POST", "/demo/lead", big)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest {
		t.Errorf("oversized form: status %d, want 400", w.Code)
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		opts Options
		want string // "" for valid; else a fragment of the error
	}{
		{Options{}, ""},
		{Options{Site: "example.com", Endpoint: "/collect"}, ""},
		{Options{Endpoint: "https://rung.example.com/collect"}, ""},
		{Options{Site: "-bad"}, `site "-bad"`},
		{Options{Site: "has space"}, `site "has space"`},
		{Options{Site: strings.Repeat("a", 101)}, "site"},
		{Options{Endpoint: "collect"}, `endpoint "collect"`},
		{Options{Endpoint: "ftp://x/collect"}, `endpoint "ftp://x/collect"`},
		{Options{Endpoint: "https:///collect"}, "endpoint"},
	}
	for _, tc := range tests {
		_, err := New(tc.opts)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("New(%+v): %v", tc.opts, err)
		case tc.want != "" && (err == nil || !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("New(%+v) = %v, want ErrOptions naming %s", tc.opts, err, tc.want)
		}
	}
}

func TestPaths(t *testing.T) {
	h := newHandler(t, Options{})
	for _, p := range h.Paths() {
		path := p
		if strings.HasSuffix(p, "/") {
			path += "pricing"
		}
		if res := get(t, h, "GET", path, nil); res.StatusCode != 200 {
			t.Errorf("GET %s (mounted as %s): status %d", path, p, res.StatusCode)
		}
	}
}

// thousands writes n with comma separators, as the README does: 1,485.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
