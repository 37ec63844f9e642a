package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

//go:embed json/*.json
var files embed.FS

// baseURL is where the schemas say they live; it is only an identifier, nothing is
// fetched from it.
const baseURL = "https://rung.dev/schemas/"

// signalSchema is the entry point for telemetry signals; each type's schema is reached
// from it by the signal's "type".
const signalSchema = "signal.v2"

// Registry holds every schema rung knows, compiled once. It is safe for concurrent use.
type Registry struct {
	raw    map[string][]byte             // name ("pageview.v1") → file, served read-only
	oracle map[string]*jsonschema.Schema // name → compiled by jsonschema/v5, patterns made ECMA-262
	// goPatterns maps a pattern as the oracle runs it (Go syntax, see ecmaToGo) to the
	// pattern as the schema states it, so reports quote the schema.
	goPatterns map[string]string
	events     map[string]string          // business event name → its newest schema name
	rules      [TypeExposure + 1][]*rules // fast-path constraints per signal type and version (index)

	disagree atomic.Uint64 // see Disagreements
}

// NewRegistry compiles the embedded schemas. An error means a schema file is broken or
// uses a keyword the fast path cannot check: a build defect, not a runtime condition.
func NewRegistry() (*Registry, error) {
	sub, err := fs.Sub(files, "json")
	if err != nil {
		return nil, fmt.Errorf("embedded schemas: %w", err)
	}
	return newRegistry(sub)
}

// signalFile matches the schema of one signal type at one version.
var signalFile = regexp.MustCompile(`^(pageview|event|exposure)\.v([1-9][0-9]?)$`)

// newRegistry compiles every *.json at the root of fsys.
func newRegistry(fsys fs.FS) (*Registry, error) {
	r := &Registry{
		raw:    make(map[string][]byte),
		oracle: make(map[string]*jsonschema.Schema),
		events: make(map[string]string),

		goPatterns: make(map[string]string),
	}
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft7
	c.AssertFormat = true
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", e.Name(), err)
		}
		name := strings.TrimSuffix(e.Name(), ".json")
		r.raw[name] = b
		if err := c.AddResource(baseURL+e.Name(), bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", e.Name(), err)
		}
	}
	seen := make(map[*jsonschema.Schema]bool)
	for name := range r.raw {
		s, err := c.Compile(baseURL + name + ".json")
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", name, err)
		}
		if err := r.ecmaPatterns(s, seen); err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", name, err)
		}
		r.oracle[name] = s
		base, _, _ := strings.Cut(name, ".")
		switch base {
		case "signal", "defs", "pageview", "event", "exposure":
		default:
			if cur, ok := r.events[base]; !ok || cur < name {
				r.events[base] = name
			}
		}
	}
	rc := newRuleCompiler(r.goPatterns)
	for name := range r.raw {
		m := signalFile.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		t, v := ParseType(m[1]), int(m[2][0]-'0')
		if len(m[2]) == 2 {
			v = v*10 + int(m[2][1]-'0')
		}
		rs, err := rc.compileRules(r.oracle[name], name)
		if err != nil {
			return nil, fmt.Errorf("compile fast-path rules for %s: %w", name, err)
		}
		if err := rs.checkVersion(v); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for len(r.rules[t]) <= v {
			r.rules[t] = append(r.rules[t], nil)
		}
		r.rules[t][v] = rs
	}
	for t := TypePageview; t <= TypeExposure; t++ {
		if len(r.rules[t]) < 2 || r.rules[t][1] == nil {
			return nil, fmt.Errorf("no schema %s.v1", t)
		}
		for v, rs := range r.rules[t][1:] {
			if rs == nil {
				return nil, fmt.Errorf("%s.v%d is missing between v1 and v%d", t, v+1, len(r.rules[t])-1)
			}
		}
	}
	return r, nil
}

// Names lists the schemas by name ("pageview.v1", ...), sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.raw))
	for n := range r.raw {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// File returns the schema document called name ("pageview.v1" or "pageview.v1.json").
// The returned bytes are shared: callers must not modify them.
func (r *Registry) File(name string) ([]byte, bool) {
	b, ok := r.raw[strings.TrimSuffix(path.Base(name), ".json")]
	return b, ok
}

// Problem is one reason a document failed validation.
type Problem struct {
	Pointer string `json:"pointer"` // JSON pointer into the document ("" is the whole document)
	Reason  string `json:"reason"`
}

// ValidationError lists every problem the oracle found, most specific first.
type ValidationError struct {
	Schema   string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 0 {
		return "invalid " + e.Schema
	}
	p := e.Problems[0]
	return fmt.Sprintf("invalid %s at %q: %s", e.Schema, p.Pointer, p.Reason)
}

// ValidateEvent validates doc, a business event such as lead_created, against the newest
// version of its schema. Failures are *ValidationError or ErrUnknownSchema.
func (r *Registry) ValidateEvent(name string, doc []byte) error {
	sn, ok := r.events[name]
	if !ok {
		return fmt.Errorf("%w: business event %q", ErrUnknownSchema, name)
	}
	return r.validate(sn, doc)
}

// Validate validates doc against the schema called name ("pageview.v1", "signal.v2").
func (r *Registry) Validate(name string, doc []byte) error {
	if _, ok := r.oracle[name]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSchema, name)
	}
	return r.validate(name, doc)
}

func (r *Registry) validate(name string, doc []byte) error {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return &ValidationError{Schema: name, Problems: []Problem{{Reason: "malformed JSON: " + err.Error()}}}
	}
	if d.More() {
		return &ValidationError{Schema: name, Problems: []Problem{{Reason: "malformed JSON: data after the document"}}}
	}
	err := r.oracle[name].Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("validate %s: %w", name, err)
	}
	out := &ValidationError{Schema: name}
	r.leaves(ve, &out.Problems)
	return out
}

// leaves collects the most specific causes: a parent's message ("doesn't validate with
// ...") only restates its children.
func (r *Registry) leaves(ve *jsonschema.ValidationError, dst *[]Problem) {
	if len(ve.Causes) == 0 {
		reason := ve.Message
		if strings.HasSuffix(ve.KeywordLocation, "/pattern") {
			for goSrc, src := range r.goPatterns {
				reason = strings.Replace(reason, quotePattern(goSrc), quotePattern(src), 1)
			}
		}
		*dst = append(*dst, Problem{Pointer: ve.InstanceLocation, Reason: reason})
		return
	}
	for _, c := range ve.Causes {
		r.leaves(c, dst)
	}
}

// quotePattern quotes a pattern as jsonschema/v5 does in its messages, so that leaves
// can put the schema's own pattern in place of the one the oracle ran.
func quotePattern(s string) string {
	s = strconv.Quote(s)
	s = strings.ReplaceAll(s, `\"`, `"`)
	s = strings.ReplaceAll(s, `'`, `\'`)
	return "'" + s[1:len(s)-1] + "'"
}

// ecmaPatterns gives every pattern under s ECMA-262's meaning (see ecmaToGo): the
// library compiles a schema's "pattern" with Go's regexp as written, so without this it
// would take a URL holding U+00A0 or U+2028 that the schema means to refuse. seen holds
// the schemas already rewritten: documents share their $ref targets.
func (r *Registry) ecmaPatterns(s *jsonschema.Schema, seen map[*jsonschema.Schema]bool) error {
	if s == nil || seen[s] {
		return nil
	}
	seen[s] = true
	var err error
	if s.Pattern != nil {
		if s.Pattern, err = r.ecmaRegexp(s.Pattern); err != nil {
			return fmt.Errorf("%s: %w", s.Location, err)
		}
	}
	if len(s.PatternProperties) > 0 {
		m := make(map[*regexp.Regexp]*jsonschema.Schema, len(s.PatternProperties))
		for re, sub := range s.PatternProperties {
			if re, err = r.ecmaRegexp(re); err != nil {
				return fmt.Errorf("%s: patternProperties: %w", s.Location, err)
			}
			m[re] = sub
		}
		s.PatternProperties = m
	}
	return r.eachSubschema(reflect.ValueOf(s).Elem(), seen)
}

func (r *Registry) ecmaRegexp(re *regexp.Regexp) (*regexp.Regexp, error) {
	src := re.String()
	goSrc, err := ecmaToGo(src)
	if err != nil {
		return nil, err
	}
	if goSrc == src {
		return re, nil
	}
	out, err := regexp.Compile(goSrc)
	if err != nil {
		return nil, fmt.Errorf("pattern %q as Go reads it, %q: %w", src, goSrc, err)
	}
	r.goPatterns[goSrc] = src
	return out, nil
}

// eachSubschema runs ecmaPatterns on every schema v (a Schema's field, or the Schema)
// holds: directly, in a slice, a map's values or an interface. Walking the library's
// exported fields by reflection reaches every keyword that holds subschemas, including
// ones this package never names.
func (r *Registry) eachSubschema(v reflect.Value, seen map[*jsonschema.Schema]bool) error {
	switch v.Kind() {
	case reflect.Pointer:
		if s, ok := v.Interface().(*jsonschema.Schema); ok {
			return r.ecmaPatterns(s, seen)
		}
	case reflect.Interface:
		if !v.IsNil() {
			return r.eachSubschema(v.Elem(), seen)
		}
	case reflect.Slice:
		for i := range v.Len() {
			if err := r.eachSubschema(v.Index(i), seen); err != nil {
				return err
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if err := r.eachSubschema(it.Value(), seen); err != nil {
				return err
			}
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				if err := r.eachSubschema(v.Field(i), seen); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
