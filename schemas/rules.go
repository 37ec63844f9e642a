package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"
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
	numSlots
	slotNone slot = 255
)

var slotNames = [numSlots]string{
	"type", "v", "site", "anonymous_id", "event_id", "url", "referrer", "utm_source",
	"utm_medium", "utm_campaign", "utm_term", "utm_content", "name", "experiment", "variant",
	"value", "props",
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

// token is one scanned value. str is the decoded string; lit is a number's literal.
type token struct {
	kind kind
	str  string
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
	konst    *token // const, compared by kind and value
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
	k := rs.slots[slotV].konst
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
	if r.konst != nil {
		if !sameValue(t, r.konst) {
			return "value must be " + r.konst.String()
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
		if (r.maxLen >= 0 && len(t.str) > r.maxLen) || (len(t.str)+3)/4 < r.minLen {
			n := utf8.RuneCountInString(t.str)
			if n < r.minLen {
				return fmt.Sprintf("length must be >= %d, but got %d", r.minLen, n)
			}
			if r.maxLen >= 0 && n > r.maxLen {
				return fmt.Sprintf("length must be <= %d, but got %d", r.maxLen, n)
			}
		}
		if r.pattern != nil && !r.pattern.MatchString(t.str) {
			return "does not match pattern " + strconv.Quote(r.pattern.String())
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
		return strconv.Quote(t.str)
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
		return t.str == c.str
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

// compileRules builds the fast path for one signal schema from the same files the
// oracle compiles. It accepts only the keywords it enforces, so a schema change the fast
// path would ignore fails here, at start, instead of letting the two paths disagree.
func compileRules(files map[string][]byte, name string) (*rules, error) {
	root, err := load(files, name)
	if err != nil {
		return nil, err
	}
	if err := only(root, "$schema", "$id", "title", "description", "type", "required", "additionalProperties", "properties"); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if root["type"] != "object" || root["additionalProperties"] != false {
		return nil, fmt.Errorf("%s: a signal schema must be a closed object (type object, additionalProperties false)", name)
	}
	rs := &rules{}
	props, _ := root["properties"].(map[string]any)
	for key, v := range props {
		sl := slotOf(key)
		if sl == slotNone {
			return nil, fmt.Errorf("%s: property %q has no place in schemas.Signal; teach the decoder about it first", name, key)
		}
		sub, err := resolve(files, name, v)
		if err != nil {
			return nil, fmt.Errorf("%s: property %q: %w", name, key, err)
		}
		rs.allowed |= 1 << sl
		if sl == slotProps {
			if rs.props, err = compileProps(files, name, sub); err != nil {
				return nil, fmt.Errorf("%s: props: %w", name, err)
			}
			continue
		}
		if rs.slots[sl], err = compileRule(sub); err != nil {
			return nil, fmt.Errorf("%s: property %q: %w", name, key, err)
		}
	}
	req, _ := root["required"].([]any)
	for _, k := range req {
		sl := slotOf(fmt.Sprint(k))
		if sl == slotNone || rs.allowed&(1<<sl) == 0 {
			return nil, fmt.Errorf("%s: required %q is not a declared property", name, k)
		}
		rs.required |= 1 << sl
	}
	return rs, nil
}

func compileProps(files map[string][]byte, name string, s map[string]any) (propsRule, error) {
	var p propsRule
	if err := only(s, "description", "type", "maxProperties", "propertyNames", "additionalProperties"); err != nil {
		return p, err
	}
	if s["type"] != "object" {
		return p, fmt.Errorf("must be of type object")
	}
	p.maxProps = -1
	if n, ok := s["maxProperties"].(json.Number); ok {
		v, err := strconv.Atoi(n.String())
		if err != nil {
			return p, fmt.Errorf("maxProperties: %w", err)
		}
		p.maxProps = v
	}
	names, _ := s["propertyNames"].(map[string]any)
	var err error
	if p.names, err = compileRule(names); err != nil {
		return p, fmt.Errorf("propertyNames: %w", err)
	}
	p.names.types = 0 // property names are always strings
	values, err := resolve(files, name, s["additionalProperties"])
	if err != nil {
		return p, fmt.Errorf("additionalProperties: %w", err)
	}
	if p.values, err = compileRule(values); err != nil {
		return p, fmt.Errorf("additionalProperties: %w", err)
	}
	if p.values.types == 0 || p.values.types.has(kindObject) || p.values.types.has(kindArray) {
		return p, fmt.Errorf("additionalProperties: props must stay flat: list scalar types")
	}
	return p, nil
}

func compileRule(s map[string]any) (rule, error) {
	r := rule{maxLen: -1}
	if err := only(s, "description", "type", "const", "minLength", "maxLength", "pattern", "minimum", "maximum"); err != nil {
		return r, err
	}
	for k, v := range s {
		var err error
		switch k {
		case "type":
			r.types, err = compileTypes(v)
		case "const":
			r.konst, err = constToken(v)
		case "minLength":
			r.minLen, err = atoi(v)
		case "maxLength":
			r.maxLen, err = atoi(v)
		case "pattern":
			r.pattern, err = compilePattern(fmt.Sprint(v))
		case "minimum":
			r.min, err = compileBound(v)
		case "maximum":
			r.max, err = compileBound(v)
		}
		if err != nil {
			return r, fmt.Errorf("%s: %w", k, err)
		}
	}
	return r, nil
}

func compileTypes(v any) (kinds, error) {
	var list []any
	switch v := v.(type) {
	case string:
		list = []any{v}
	case []any:
		list = v
	default:
		return 0, fmt.Errorf("unsupported form %v", v)
	}
	var ks kinds
	for _, n := range list {
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
		return &token{kind: kindString, str: v}, nil
	case json.Number:
		f, err := strconv.ParseFloat(v.String(), 64)
		if err != nil {
			return nil, err
		}
		return &token{kind: kindNumber, lit: v.String(), f: f}, nil
	}
	return nil, fmt.Errorf("only string and number constants are supported, got %v", v)
}

func compileBound(v any) (*bound, error) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, fmt.Errorf("not a number: %v", v)
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, fmt.Errorf("bound %s: not a finite float", n)
	}
	rat, ok := new(big.Rat).SetString(n.String())
	if !ok {
		return nil, fmt.Errorf("bound %s: not a rational", n)
	}
	return &bound{f: f, rat: rat}, nil
}

func atoi(v any) (int, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("not a number: %v", v)
	}
	return strconv.Atoi(n.String())
}

// only fails on any keyword outside allowed: the fast path would not enforce it.
func only(s map[string]any, allowed ...string) error {
	for k := range s {
		ok := false
		for _, a := range allowed {
			ok = ok || k == a
		}
		if !ok {
			return fmt.Errorf("keyword %q is not supported by the fast path", k)
		}
	}
	return nil
}

func load(files map[string][]byte, name string) (map[string]any, error) {
	b, ok := files[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownSchema, name)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("parse schema %s: %w", name, err)
	}
	return m, nil
}

// resolve follows a "$ref" to another embedded file ("defs.v1.json#/definitions/id");
// a schema without one is returned as it is.
func resolve(files map[string][]byte, from string, v any) (map[string]any, error) {
	s, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("expected a schema object, got %v", v)
	}
	ref, ok := s["$ref"].(string)
	if !ok {
		return s, nil
	}
	if len(s) != 1 {
		return nil, fmt.Errorf("$ref with sibling keywords is not supported")
	}
	file, frag, _ := strings.Cut(ref, "#")
	if file == "" {
		file = from + ".json"
	}
	doc, err := load(files, strings.TrimSuffix(file, ".json"))
	if err != nil {
		return nil, err
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(frag, "/"), "/") {
		if part == "" {
			continue
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %s: %s is not an object", ref, part)
		}
		cur = m[part]
	}
	return resolve(files, from, cur)
}
