package schemas

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// slot is a property of a signal that the decoder knows how to store.
type slot uint8

const (
	slotType slot = iota
	slotV
	slotSite
	slotAnonymousID
	slotEventID
	slotURL
	slotReferrer
	slotUTMSource
	slotUTMMedium
	slotUTMCampaign
	slotUTMTerm
	slotUTMContent
	slotName
	slotExperiment
	slotVariant
	slotValue
	slotProps
	slotTS
	slotSentAt
	numSlots
	slotNone slot = 255
)

var slotNames = [numSlots]string{
	"type", "v", "site", "anonymous_id", "event_id", "url", "referrer", "utm_source",
	"utm_medium", "utm_campaign", "utm_term", "utm_content", "name", "experiment", "variant",
	"value", "props", "ts", "sent_at",
}

func slotOf(key string) slot {
	switch key {
	case "type":
		return slotType
	case "v":
		return slotV
	case "site":
		return slotSite
	case "anonymous_id":
		return slotAnonymousID
	case "event_id":
		return slotEventID
	case "url":
		return slotURL
	case "referrer":
		return slotReferrer
	case "utm_source":
		return slotUTMSource
	case "utm_medium":
		return slotUTMMedium
	case "utm_campaign":
		return slotUTMCampaign
	case "utm_term":
		return slotUTMTerm
	case "utm_content":
		return slotUTMContent
	case "name":
		return slotName
	case "experiment":
		return slotExperiment
	case "variant":
		return slotVariant
	case "value":
		return slotValue
	case "props":
		return slotProps
	case "ts":
		return slotTS
	case "sent_at":
		return slotSentAt
	}
	return slotNone
}

// kind is a JSON value's type as the scanner saw it.
type kind uint8

const (
	kindNone kind = iota
	kindString
	kindNumber
	kindBool
	kindNull
	kindObject
	kindArray
)

var kindNames = [...]string{"", "string", "number", "boolean", "null", "object", "array"}

// kinds is a set of kinds, for the "type" keyword.
type kinds uint8

func (k kinds) has(x kind) bool { return k&(1<<x) != 0 }

// token is one scanned value. text is the decoded string; lit is a number's literal.
type token struct {
	kind kind
	text string
	lit  string
	f    float64
}

// rule is the fast path's compiled form of one property's schema.
type rule struct {
	types    kinds // 0: any
	minLen   int
	maxLen   int // -1: none
	pattern  matcher
	min, max *bound
	constant *token // const, compared by kind and value

	// The reason a string breaks pattern, worded as the oracle words it and with the
	// schema's own pattern: built once, so a rejection allocates nothing for it.
	patternWhy string
}

// bound is a numeric limit, kept as a float for the common case and as an exact
// rational for the rare value that rounds onto it.
type bound struct {
	f   float64
	rat *big.Rat
}

// propsRule checks the flat props map.
type propsRule struct {
	maxProps int
	names    rule
	values   rule
}

// rules is what one signal type allows and requires.
type rules struct {
	allowed  uint32 // bit per slot
	required uint32
	slots    [numSlots]rule
	props    propsRule
}

// checkVersion makes sure a signal schema of version v says so: "v" is the constant v,
// and from v2 on it is required (a signal without "v" is a v1 signal).
func (rs *rules) checkVersion(v int) error {
	k := rs.slots[slotV].constant
	if rs.allowed&(1<<slotV) == 0 || k == nil || k.kind != kindNumber || k.f != float64(v) {
		return fmt.Errorf(`property "v" must be {"const": %d}`, v)
	}
	if v > 1 && rs.required&(1<<slotV) == 0 {
		return fmt.Errorf(`version %d must require "v"`, v)
	}
	return nil
}

// check reports why t breaks r, or "" when it does not.
func (r *rule) check(t *token) string {
	if r.constant != nil {
		if !sameValue(t, r.constant) {
			return "value must be " + r.constant.String()
		}
		return ""
	}
	if r.types != 0 && !r.types.has(t.kind) {
		return "expected " + r.typeNames() + ", but got " + kindNames[t.kind]
	}
	switch t.kind {
	case kindString:
		// A string has at most len runes and at least a quarter of that (a rune is at
		// most 4 bytes, a stray byte counts as one): count only when that does not decide.
		if (r.maxLen >= 0 && len(t.text) > r.maxLen) || (len(t.text)+3)/4 < r.minLen {
			n := utf8.RuneCountInString(t.text)
			if n < r.minLen {
				return fmt.Sprintf("length must be >= %d, but got %d", r.minLen, n)
			}
			if r.maxLen >= 0 && n > r.maxLen {
				return fmt.Sprintf("length must be <= %d, but got %d", r.maxLen, n)
			}
		}
		if r.pattern != nil && !r.pattern.MatchString(t.text) {
			return r.patternWhy
		}
	case kindNumber:
		if r.min != nil && compareNumber(t, r.min) < 0 {
			return "must be >= " + r.min.rat.RatString() + " but found " + t.lit
		}
		if r.max != nil && compareNumber(t, r.max) > 0 {
			return "must be <= " + r.max.rat.RatString() + " but found " + t.lit
		}
	}
	return ""
}

func (r *rule) typeNames() string {
	var names []string
	for k := kindString; k <= kindArray; k++ {
		if r.types.has(k) {
			names = append(names, kindNames[k])
		}
	}
	return strings.Join(names, " or ")
}

func (t *token) String() string {
	if t.kind == kindString {
		return strconv.Quote(t.text)
	}
	return t.lit
}

// compareNumber compares a scanned number with a bound exactly, as the oracle does.
func compareNumber(t *token, b *bound) int {
	if t.f < b.f {
		return -1
	}
	if t.f > b.f {
		return 1
	}
	// The float rounded onto the bound: decide on the literal.
	x, ok := new(big.Rat).SetString(t.lit)
	if !ok {
		return 0
	}
	return x.Cmp(b.rat)
}

func sameValue(t, c *token) bool {
	if t.kind != c.kind {
		return false
	}
	switch t.kind {
	case kindString:
		return t.text == c.text
	case kindNumber:
		if t.f != c.f {
			return false
		}
		x, ok1 := new(big.Rat).SetString(t.lit)
		y, ok2 := new(big.Rat).SetString(c.lit)
		return ok1 && ok2 && x.Cmp(y) == 0
	}
	return t.lit == c.lit
}

// compileRules builds the fast path for one signal schema from its compiled form: the
// schema the oracle validates with, $refs already resolved. It accepts only the keywords
// it enforces, so a schema change the fast path would ignore fails here, at start,
// instead of letting the two paths disagree.
func (rc *ruleCompiler) compileRules(root *jsonschema.Schema, name string) (*rules, error) {
	if err := rc.only(root, "Types", "Required", "Properties", "AdditionalProperties"); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if open, isBool := root.AdditionalProperties.(bool); !slices.Equal(root.Types, []string{"object"}) || !isBool || open {
		return nil, fmt.Errorf("%s: a signal schema must be a closed object (type object, additionalProperties false)", name)
	}
	rs := &rules{}
	for key, prop := range root.Properties {
		sl := slotOf(key)
		if sl == slotNone {
			return nil, fmt.Errorf("%s: property %q has no place in schemas.Signal; teach the decoder about it first", name, key)
		}
		sub, err := rc.deref(prop)
		if err != nil {
			return nil, fmt.Errorf("%s: property %q: %w", name, key, err)
		}
		rs.allowed |= 1 << sl
		if sl == slotProps {
			if rs.props, err = rc.compileProps(sub); err != nil {
				return nil, fmt.Errorf("%s: props: %w", name, err)
			}
			continue
		}
		if rs.slots[sl], err = rc.compileRule(sub); err != nil {
			return nil, fmt.Errorf("%s: property %q: %w", name, key, err)
		}
	}
	for _, k := range root.Required {
		sl := slotOf(k)
		if sl == slotNone || rs.allowed&(1<<sl) == 0 {
			return nil, fmt.Errorf("%s: required %q is not a declared property", name, k)
		}
		rs.required |= 1 << sl
	}
	return rs, nil
}

func (rc *ruleCompiler) compileProps(s *jsonschema.Schema) (propsRule, error) {
	var p propsRule
	if err := rc.only(s, "Types", "MaxProperties", "PropertyNames", "AdditionalProperties"); err != nil {
		return p, err
	}
	if !slices.Equal(s.Types, []string{"object"}) {
		return p, fmt.Errorf("must be of type object")
	}
	p.maxProps = s.MaxProperties // -1 when absent, as the library keeps it
	var err error
	if s.PropertyNames != nil {
		names, err := rc.deref(s.PropertyNames)
		if err != nil {
			return p, fmt.Errorf("propertyNames: %w", err)
		}
		if p.names, err = rc.compileRule(names); err != nil {
			return p, fmt.Errorf("propertyNames: %w", err)
		}
	} else {
		p.names = rule{maxLen: -1}
	}
	p.names.types = 0 // property names are always strings
	values, ok := s.AdditionalProperties.(*jsonschema.Schema)
	if !ok {
		return p, fmt.Errorf("additionalProperties: props must say which values they take")
	}
	if values, err = rc.deref(values); err != nil {
		return p, fmt.Errorf("additionalProperties: %w", err)
	}
	if p.values, err = rc.compileRule(values); err != nil {
		return p, fmt.Errorf("additionalProperties: %w", err)
	}
	if p.values.types == 0 || p.values.types.has(kindObject) || p.values.types.has(kindArray) {
		return p, fmt.Errorf("additionalProperties: props must stay flat: list scalar types")
	}
	return p, nil
}

func (rc *ruleCompiler) compileRule(s *jsonschema.Schema) (rule, error) {
	r := rule{maxLen: s.MaxLength, minLen: max(s.MinLength, 0)} // -1: absent
	if err := rc.only(s, "Types", "Constant", "MinLength", "MaxLength", "Pattern", "Minimum", "Maximum"); err != nil {
		return r, err
	}
	var err error
	if r.types, err = compileTypes(s.Types); err != nil {
		return r, fmt.Errorf("type: %w", err)
	}
	if len(s.Constant) > 0 {
		if r.constant, err = constToken(s.Constant[0]); err != nil {
			return r, fmt.Errorf("const: %w", err)
		}
	}
	if s.Pattern != nil {
		goSrc := s.Pattern.String()
		if r.pattern, err = compilePattern(goSrc); err != nil {
			return r, fmt.Errorf("pattern: %w", err)
		}
		src, ok := rc.sources[goSrc]
		if !ok {
			src = goSrc
		}
		r.patternWhy = "does not match pattern " + quotePattern(src)
	}
	if r.min, err = compileBound(s.Minimum); err != nil {
		return r, fmt.Errorf("minimum: %w", err)
	}
	if r.max, err = compileBound(s.Maximum); err != nil {
		return r, fmt.Errorf("maximum: %w", err)
	}
	return r, nil
}

func compileTypes(names []string) (kinds, error) {
	var ks kinds
	for _, n := range names {
		found := false
		for k := kindString; k <= kindArray; k++ {
			if kindNames[k] == n {
				ks |= 1 << k
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("type %v is not supported by the fast path", n)
		}
	}
	return ks, nil
}

func constToken(v any) (*token, error) {
	switch v := v.(type) {
	case string:
		return &token{kind: kindString, text: v}, nil
	case json.Number:
		f, err := strconv.ParseFloat(v.String(), 64)
		if err != nil {
			return nil, err
		}
		return &token{kind: kindNumber, lit: v.String(), f: f}, nil
	}
	return nil, fmt.Errorf("only string and number constants are supported, got %v", v)
}

// compileBound keeps a limit the library holds as an exact rational; nil stays nil.
func compileBound(rat *big.Rat) (*bound, error) {
	if rat == nil {
		return nil, nil
	}
	f, _ := rat.Float64()
	if math.IsInf(f, 0) {
		return nil, fmt.Errorf("bound %s: not a finite float", rat.RatString())
	}
	return &bound{f: f, rat: rat}, nil
}

// deref follows $ref: a property's schema is usually a reference into defs.v1.json. In
// draft-07 a $ref's sibling keywords are ignored, by the library and so here.
func (rc *ruleCompiler) deref(s *jsonschema.Schema) (*jsonschema.Schema, error) {
	for depth := 0; s.Ref != nil; depth++ {
		if depth == 32 {
			return nil, fmt.Errorf("$ref chain at %s is too long", s.Location)
		}
		if err := rc.only(s, "Ref"); err != nil {
			return nil, err
		}
		s = s.Ref
	}
	return s, nil
}

// ruleCompiler builds the fast path's rules from schemas the library has compiled.
type ruleCompiler struct {
	// blanks holds, per draft, a compiled schema with no keywords: what only compares
	// against. The library marks an absent keyword by a zero value, by -1 (maxLength,
	// maxProperties, ...) or by a draft's default; comparing with a schema it compiled
	// itself leaves that knowledge in the library.
	blanks map[*jsonschema.Draft]*jsonschema.Schema
	// sources maps a pattern as the library compiled it (Go syntax) to the schema's own,
	// for reasons that quote the pattern the client can look up.
	sources map[string]string
}

func newRuleCompiler(sources map[string]string) *ruleCompiler {
	return &ruleCompiler{blanks: make(map[*jsonschema.Draft]*jsonschema.Schema), sources: sources}
}

// blank returns the keyword-free schema of draft d.
func (rc *ruleCompiler) blank(d *jsonschema.Draft) (*jsonschema.Schema, error) {
	if b, ok := rc.blanks[d]; ok {
		return b, nil
	}
	c := jsonschema.NewCompiler()
	c.Draft = d
	const url = baseURL + "blank.json"
	if err := c.AddResource(url, strings.NewReader("{}")); err != nil {
		return nil, fmt.Errorf("add the empty schema: %w", err)
	}
	b, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("compile the empty schema: %w", err)
	}
	rc.blanks[d] = b
	return b, nil
}

// annotations are Schema fields that never change what validates.
var annotations = []string{"Location", "Draft", "Title", "Description", "Default", "Comment",
	"ReadOnly", "WriteOnly", "Examples", "Deprecated"}

// only fails on any keyword of s outside allowed (named by the library's Schema fields):
// the fast path would not enforce it.
func (rc *ruleCompiler) only(s *jsonschema.Schema, allowed ...string) error {
	blank, err := rc.blank(s.Draft)
	if err != nil {
		return err
	}
	v, b := reflect.ValueOf(s).Elem(), reflect.ValueOf(blank).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() || slices.Contains(allowed, f.Name) || slices.Contains(annotations, f.Name) {
			continue
		}
		if !reflect.DeepEqual(v.Field(i).Interface(), b.Field(i).Interface()) {
			return fmt.Errorf("keyword %s (at %s) is not supported by the fast path", keyword(f.Name), s.Location)
		}
	}
	return nil
}

// keyword turns a Schema field's name into the keyword it holds, near enough to find it
// in the schema file: "MaxProperties" is "maxProperties".
func keyword(field string) string {
	switch field {
	case "Types":
		return "type"
	case "Constant":
		return "const"
	}
	return strings.ToLower(field[:1]) + field[1:]
}
