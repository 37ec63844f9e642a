package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/santhosh-tekuri/jsonschema/v5"

	"github.com/rungdev/rung/collector"
	"github.com/rungdev/rung/internal/harness"
	"github.com/rungdev/rung/schemas"
)

// openAPI is the part of an OpenAPI 3.1 document the conformance test reads.
type openAPI struct {
	Paths      map[string]map[string]*operation `json:"paths"`
	Components struct {
		Responses map[string]*response `json:"responses"`
	} `json:"components"`
}

type operation struct {
	OperationID string `json:"operationId"`
	Parameters  []struct {
		Name    string `json:"name"`
		In      string `json:"in"`
		Example any    `json:"example"`
	} `json:"parameters"`
	RequestBody *struct {
		Content map[string]struct {
			Example any `json:"example"`
		} `json:"content"`
	} `json:"requestBody"`
	Security  []map[string][]string `json:"security"`
	Responses map[string]*response  `json:"responses"`
}

type response struct {
	Ref     string `json:"$ref"`
	Headers map[string]struct {
		Ref    string `json:"$ref"`
		Schema struct {
			Const *string `json:"const"`
		} `json:"schema"`
	} `json:"headers"`
	Content map[string]json.RawMessage `json:"content"`
}

// apiDoc is the document as rung serves it, with its schemas compiled for validating
// answers.
type apiDoc struct {
	openAPI
	compiler *jsonschema.Compiler
	schemas  map[string]*jsonschema.Schema
}

const docURL = "rung://openapi.json"

func loadAPIDoc(t *testing.T, raw []byte) *apiDoc {
	t.Helper()
	d := &apiDoc{schemas: map[string]*jsonschema.Schema{}}
	if err := json.Unmarshal(raw, &d.openAPI); err != nil {
		t.Fatalf("/openapi.json: %v", err)
	}
	if len(d.Paths) == 0 {
		t.Fatal("/openapi.json documents no paths")
	}
	d.compiler = jsonschema.NewCompiler()
	d.compiler.Draft = jsonschema.Draft2020 // OpenAPI 3.1's schemas are JSON Schema 2020-12
	d.compiler.AssertFormat = true          // date-time fields are checked as such
	if err := d.compiler.AddResource(docURL, bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	return d
}

// pointer escapes one JSON pointer token, for a URL fragment.
func pointer(tok string) string {
	return url.PathEscape(strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1"))
}

// check finds the documented answer for status to method path (a path of the
// document) and checks resp against it: documented status, content type, body schema,
// headers with a fixed value. It returns the body.
func (d *apiDoc) check(t *testing.T, method, path string, resp *http.Response) []byte {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	what := fmt.Sprintf("%s %s answered %d", strings.ToUpper(method), resp.Request.URL.RequestURI(), resp.StatusCode)
	op := d.Paths[path][method]
	if op == nil {
		t.Errorf("%s: %s %s is not in the document", what, method, path)
		return body
	}
	status := strconv.Itoa(resp.StatusCode)
	r, base := op.Responses[status], "#/paths/"+pointer(path)+"/"+method+"/responses/"+status
	if r == nil {
		t.Errorf("%s, which the document does not list (%v)\n%s", what, slices.Sorted(keys(op.Responses)), body)
		return body
	}
	if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
		r, base = d.Components.Responses[name], "#/components/responses/"+pointer(name)
	}
	for h, spec := range r.Headers {
		if resp.Header.Get(h) == "" {
			t.Errorf("%s without its documented %s header", what, h)
		} else if spec.Schema.Const != nil && resp.Header.Get(h) != *spec.Schema.Const {
			t.Errorf("%s with %s: %q, want %q", what, h, resp.Header.Get(h), *spec.Schema.Const)
		}
	}
	if len(r.Content) == 0 {
		return body
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if _, ok := r.Content[mt]; err != nil || !ok {
		t.Errorf("%s with Content-Type %q, want one of %v", what, resp.Header.Get("Content-Type"), slices.Sorted(keys(r.Content)))
		return body
	}
	if mt != "application/json" {
		return body
	}
	ref := docURL + base + "/content/" + pointer(mt) + "/schema"
	s, ok := d.schemas[ref]
	if !ok {
		if s, err = d.compiler.Compile(ref); err != nil {
			t.Fatalf("compile the schema of %s: %v", ref, err)
		}
		d.schemas[ref] = s
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Errorf("%s with a body that is not JSON: %v\n%s", what, err, body)
		return body
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%s with a body that does not fit the document: %#v\n%s", what, err, body)
	}
	return body
}

func keys[M ~map[string]V, V any](m M) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// noRedirects lets the test see 303s.
var noRedirects = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func request(t *testing.T, method, u, ct, body string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(strings.ToUpper(method), u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestOpenAPIConformance: every operation of /openapi.json, sent to a real `rung serve`
// as its examples say, answers as the document says (status, content type, JSON body
// against its schema, fixed headers); so do the error answers, sign-in, and the 401s.
func TestOpenAPIConformance(t *testing.T) {
	const token = "conformance-token"
	p := startServe(t, "--api-token", token, "--quarantine", "--flush-interval", "50ms")
	auth := []string{"Authorization", "Bearer " + token}

	resp := request(t, "GET", p.url("/openapi.json"), "", "")
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /openapi.json without a token: %d", resp.StatusCode)
	}
	d := loadAPIDoc(t, raw)

	// Something to report on; the seed's 202 is checked against the document too.
	d.check(t, "post", "/collect", request(t, "POST", p.url("/collect"), "text/plain", seedBatch, "User-Agent", harness.BrowserUA))
	seed(t, p, token)

	// Every operation, as its examples say, with the token where it is private.
	for path, item := range d.Paths {
		for method, op := range item {
			u, ct, body := exampleRequest(t, p.url(""), path, op)
			var header []string
			if len(op.Security) > 0 {
				header = auth
			}
			resp := request(t, method, u, ct, body, header...)
			if resp.StatusCode >= 500 {
				t.Errorf("%s %s (the document's example): %d", method, u, resp.StatusCode)
			}
			d.check(t, method, path, resp)
		}
	}

	// Every private path, without credentials: the same documented 401, or, for a
	// browser, the way to the sign-in page.
	for path, item := range d.Paths {
		op := item["get"]
		if op == nil || len(op.Security) == 0 {
			continue
		}
		u, _, _ := exampleRequest(t, p.url(""), path, op)
		b := d.check(t, "get", path, request(t, "GET", u, "", ""))
		if want := `{"error":"missing or wrong API token: send Authorization: Bearer TOKEN, or sign in at /signin"}` + "\n"; string(b) != want {
			t.Errorf("GET %s without a token: %s, want the same answer as every private path: %s", path, b, want)
		}
		d.check(t, "get", path, request(t, "GET", u, "", "", "Authorization", "Bearer wrong"))
		d.check(t, "get", path, request(t, "GET", u+"&token="+token, "", ""))
		resp := request(t, "GET", u, "", "", "Accept", "text/html")
		if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || !strings.HasPrefix(loc, "/signin?next=") {
			t.Errorf("a browser at %s: %d to %q, want 303 to the sign-in page", path, resp.StatusCode, loc)
		}
		d.check(t, "get", path, resp)
	}

	// The error answers.
	for _, c := range []struct {
		method, path, uri, ct, body string
		header                      []string
		want                        int
	}{
		{"post", "/collect", "/collect", "text/plain", "{", nil, 400},
		{"post", "/collect", "/collect", "text/plain", `{"type":"click"}`, nil, 400},
		{"post", "/collect", "/collect", "text/html", "{}", nil, 415},
		{"options", "/collect", "/collect", "", "", []string{"Origin", "https://example.com"}, 204},
		{"get", "/schemas/{name}", "/schemas/nothing.json", "", "", nil, 404},
		{"get", "/v1/stats/landing-pages", "/v1/stats/landing-pages?from=yesterday", "", "", auth, 400},
		{"get", "/v1/stats/experiments/{id}", "/v1/stats/experiments/hero?control=nobody", "", "", auth, 400},
		{"get", "/v1/quarantine", "/v1/quarantine?limit=0", "", "", auth, 400},
		{"get", "/v1/place/questions", "/v1/place/questions?needs_history=maybe", "", "", nil, 400},
		{"post", "/v1/place", "/v1/place", "application/json", "{}", nil, 400},
		{"post", "/v1/place", "/v1/place", "text/plain", "{}", nil, 415},
		{"post", "/signin", "/signin", "application/x-www-form-urlencoded", "token=wrong", nil, 401},
		{"post", "/signin", "/signin", "application/json", `{"token":"` + token + `"}`, nil, 415},
		{"post", "/signin", "/signin", "application/x-www-form-urlencoded", url.Values{"token": {token}, "next": {"/referrers?path=/pricing"}}.Encode(), nil, 303},
		{"get", "/signout", "/signout", "", "", nil, 303},
	} {
		resp := request(t, c.method, p.url(c.uri), c.ct, c.body, c.header...)
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.uri, resp.StatusCode, c.want)
		}
		d.check(t, c.method, c.path, resp)
	}
}

// exampleRequest builds the request the document's examples describe: path
// parameters, query parameters and body.
func exampleRequest(t *testing.T, base, path string, op *operation) (u, ct, body string) {
	t.Helper()
	q := url.Values{}
	for _, prm := range op.Parameters {
		switch {
		case prm.Example == nil && prm.In == "path":
			t.Fatalf("%s: path parameter %s without an example", path, prm.Name)
		case prm.Example == nil:
		case prm.In == "path":
			path = strings.ReplaceAll(path, "{"+prm.Name+"}", url.PathEscape(fmt.Sprint(prm.Example)))
		case prm.In == "query":
			q.Set(prm.Name, fmt.Sprint(prm.Example))
		}
	}
	u = base + path + "?" + q.Encode()
	if op.RequestBody == nil {
		return u, "", ""
	}
	for _, mt := range slices.Sorted(keys(op.RequestBody.Content)) {
		ex := op.RequestBody.Content[mt].Example
		switch {
		case ex == nil:
			continue
		case mt == "application/x-www-form-urlencoded":
			form := url.Values{}
			for k, v := range ex.(map[string]any) {
				form.Set(k, fmt.Sprint(v))
			}
			return u, mt, form.Encode()
		default:
			b, _ := json.Marshal(ex)
			return u, mt, string(b)
		}
	}
	return u, "", ""
}

// TestOpenAPIRoutes: every path rung serve routes is in the document, so neither can
// drift: the collector's own paths and its mounts (from the same serveMounts serve
// uses), and every pattern registered on the mounted handlers' muxes (read from their
// source, so a new endpoint fails here until it is documented).
func TestOpenAPIRoutes(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "collector", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	d := loadAPIDoc(t, raw)
	documented := func(method, route string) bool {
		prefix := strings.HasSuffix(route, "/")
		for path, item := range d.Paths {
			if method != "" && item[method] == nil {
				continue
			}
			if prefix && strings.HasPrefix(path, route) || templateRE(path).MatchString(route) {
				return true
			}
		}
		return false
	}

	set := metrics.NewSet()
	store, err := openSink(context.Background(), sinkAt{Discard: true}, false, set)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := slog.New(slog.DiscardHandler)
	mounts, _, err := serveMounts(store, log, nil, true, "")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	srv := collector.New(collector.Config{}, reg, nil, nil, set, log, mounts...)
	for _, route := range srv.Paths() {
		if !documented("", route) {
			t.Errorf("rung serve routes %s, which /openapi.json does not document", route)
		}
	}

	for _, pattern := range muxPatterns(t, "../../preagg/dashboard", "../../stitch", "../../tiers/place", "../../collector/snippet", ".") {
		method, route, ok := strings.Cut(pattern, " ")
		if !ok {
			method, route = "", pattern
		}
		if route == "/" || route == "/v1/stats/" { // the 404 answers for what is not routed
			continue
		}
		route = strings.TrimSuffix(route, "{$}")
		if !documented(strings.ToLower(method), route) {
			t.Errorf("a handler registers %q, which /openapi.json does not document", pattern)
		}
	}
}

// TestOpenAPIDocument checks the document holds together: OpenAPI 3.1, every $ref
// resolves, every operation has a unique operationId and answers, and each path
// template's parameters are the path parameters its operations declare.
func TestOpenAPIDocument(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "collector", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", v)
	}
	resolve := func(ref string) bool {
		var v any = doc
		for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			m, ok := v.(map[string]any)
			if !ok {
				return false
			}
			if v, ok = m[strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")]; !ok {
				return false
			}
		}
		return true
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && (!strings.HasPrefix(ref, "#/") || !resolve(ref)) {
				t.Errorf("$ref %q does not resolve", ref)
			}
			for _, e := range v {
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)

	d := loadAPIDoc(t, raw)
	ids := map[string]string{}
	for path, item := range d.Paths {
		if !strings.HasPrefix(path, "/") {
			t.Errorf("path %q does not start with /", path)
		}
		var want []string
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
			want = append(want, m[1])
		}
		for method, op := range item {
			if op.OperationID == "" || ids[op.OperationID] != "" {
				t.Errorf("%s %s: operationId %q missing or also used by %s", method, path, op.OperationID, ids[op.OperationID])
			}
			ids[op.OperationID] = method + " " + path
			if len(op.Responses) == 0 {
				t.Errorf("%s %s documents no answer", method, path)
			}
			var got []string
			for _, prm := range op.Parameters {
				if prm.In == "path" {
					got = append(got, prm.Name)
				}
			}
			if slices.Sort(got); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
				t.Errorf("%s %s declares path parameters %v, want %v", method, path, got, want)
			}
		}
	}
}

// templateRE matches the paths an OpenAPI path template stands for.
func templateRE(path string) *regexp.Regexp {
	parts := regexp.MustCompile(`\{[^}]+\}`).Split(path, -1)
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.MustCompile("^" + strings.Join(parts, `(\{[^}]+\}|[^/]+)`) + "$")
}

// muxPatterns reads the string-literal patterns passed to Handle and HandleFunc in
// the non-test Go files of dirs.
func muxPatterns(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	fset := token.NewFileSet()
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok || len(call.Args) < 2 {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "HandleFunc" && sel.Sel.Name != "Handle") {
					return true
				}
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					out = append(out, s)
				}
				return true
			})
		}
	}
	if len(out) == 0 {
		t.Fatal("no mux patterns found: the reader is broken")
	}
	return out
}
