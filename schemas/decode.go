package schemas

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth caps JSON nesting in a /collect body. A valid body needs 3 levels (array,
// signal, props); the cap is checked by the scanner before any validator sees the
// document, so a 100,000-deep body costs one pass and no recursion.
const MaxDepth = 16

// Number literals longer than this, or with an exponent beyond ±maxExponent, are
// rejected before anything converts them: exact arithmetic on 1e999999999 would take
// minutes, and no signal needs such a number.
const (
	maxNumberLen = 64
	maxExponent  = 400
)

// MaxExplained caps how many rejected signals of one body the oracle explains. The
// oracle costs tens of times what the fast path does for a signal, so uncapped, a body
// of invalid signals would cost that many times a valid one; a client fixing its
// tracker needs the first few detailed reports, and every other rejection still gets
// the fast path's pointer and reason.
const MaxExplained = 4

// Meta is what the collector knows about a request, copied into every signal from it.
type Meta struct {
	ReceivedAt int64 // Unix milliseconds
	Bot        bool
	// Seq numbers the accepted signals in arrival order (Signal.Seq); nil leaves them 0.
	Seq *Sequence
}

// Rejection says why one signal of a body was not accepted.
type Rejection struct {
	Index   int    `json:"index"`   // position in the batch; 0 for a single signal
	Pointer string `json:"pointer"` // JSON pointer into that signal
	Reason  string `json:"reason"`
	Code    string `json:"-"` // reason class, the label of rung_signals_rejected_total
	Site    string `json:"-"` // the site the signal claimed, when it named one
	Raw     string `json:"-"` // the signal as sent: a slice of the body
}

// Quarantined is a rejected signal kept, sampled and bounded, so a site's owner can see
// what their tracker gets wrong.
type Quarantined struct {
	At      int64  `json:"received_at"` // Unix ms
	Site    string `json:"site"`
	Code    string `json:"reason"`
	Pointer string `json:"pointer"`
	Message string `json:"message"`
	Raw     string `json:"raw"` // cut at MaxQuarantineRaw bytes
}

// MaxQuarantineRaw bounds what a quarantined signal keeps of its raw JSON.
const MaxQuarantineRaw = 2048

// Rejection codes.
const (
	CodeSchema       = "schema"
	CodeDuplicateKey = "duplicate_key"
	CodeInvalidUTF8  = "invalid_utf8"
	CodeNumberRange  = "number_range"
	CodeNotObject    = "not_object"
)

// Batch is the result of decoding one body. It is reused: Reset keeps the capacity.
type Batch struct {
	Signals  []Signal
	Index    []int    // Index[i] is the position of Signals[i] in the body
	Raw      []string // Raw[i] is Signals[i] as sent: a slice of the body
	Rejected []Rejection

	order []int // number's scratch, kept for the next request
}

// Reset empties b for reuse, dropping references to the previous body.
func (b *Batch) Reset() {
	clear(b.Signals)
	b.Signals = b.Signals[:0]
	b.Index = b.Index[:0]
	clear(b.Raw)
	b.Raw = b.Raw[:0]
	b.Rejected = b.Rejected[:0]
}

// Disagreements counts signals the fast path rejected and the oracle accepted. It must
// stay zero; it is exported as a metric so a divergence is seen, not silently tolerated.
func (r *Registry) Disagreements() uint64 { return r.disagree.Load() }

// Decode parses a /collect body — one signal object or an array of them — validates each
// signal and appends the accepted ones to b.Signals and the others to b.Rejected. body
// must not change while b is in use: the signals' strings point into it. A returned error
// concerns the whole body (ErrSyntax, ErrTooDeep, ErrNotSignals, ErrEmpty,
// ErrBatchTooLarge), and b then holds nothing.
func (r *Registry) Decode(body string, meta Meta, maxBatch int, b *Batch) error {
	d := decoder{r: r, body: body, meta: meta}
	n0 := len(b.Signals)
	err := d.run(maxBatch, b)
	if err != nil {
		b.Reset()
		return err
	}
	if meta.Seq != nil && len(b.Signals) > n0 {
		b.order = number(b.Signals[n0:], meta.Seq.Reserve(len(b.Signals)-n0, meta.ReceivedAt), b.order)
	}
	return nil
}

// number gives the signals of one request their sequence numbers from first on, in the
// order of their event times, ties in body order: a client may send signals out of the
// order it made them (t.js puts a failed request's signals back behind newer ones).
// It sorts in scratch, which it returns, grown, for the next call.
func number(sigs []Signal, first uint64, scratch []int) []int {
	if slices.IsSortedFunc(sigs, func(a, b Signal) int { return cmp.Compare(a.EventAt, b.EventAt) }) {
		for i := range sigs {
			sigs[i].Seq = first + uint64(i)
		}
		return scratch
	}
	idx := slices.Grow(scratch[:0], len(sigs))[:len(sigs)]
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(sigs[a].EventAt, sigs[b].EventAt) })
	for rank, i := range idx {
		sigs[i].Seq = first + uint64(rank)
	}
	return idx
}

type decoder struct {
	r     *Registry
	body  string
	pos   int
	depth int
	meta  Meta

	// The first structural problem in the current signal (duplicate key, bad UTF-8,
	// unconvertible number): it decides the rejection without asking the validator.
	bad Rejection
	// The first schema problem inside the current signal's props, found while scanning.
	propsBad Rejection
	// The type and version of the signal being checked, for the oracle's report.
	typ     Type
	version int
	// How many rejections of this body the oracle has explained (see MaxExplained).
	explained int
}

func (d *decoder) run(maxBatch int, b *Batch) error {
	d.ws()
	if d.pos >= len(d.body) {
		return ErrEmpty
	}
	switch d.body[d.pos] {
	case '{':
		if err := d.element(0, b); err != nil {
			return err
		}
	case '[':
		d.pos++
		d.depth++
		d.ws()
		if d.peek() == ']' {
			d.pos++
			return d.end(ErrEmpty)
		}
		for i := 0; ; i++ {
			if i >= maxBatch {
				return fmt.Errorf("%w: more than %d", ErrBatchTooLarge, maxBatch)
			}
			if err := d.element(i, b); err != nil {
				return err
			}
			d.ws()
			c := d.peek()
			d.pos++
			if c == ']' {
				break
			}
			if c != ',' {
				return d.syntax("expected ',' or ']' after a signal")
			}
		}
	default:
		return ErrNotSignals
	}
	return d.end(nil)
}

// end checks that nothing but whitespace follows the top-level value.
func (d *decoder) end(err error) error {
	d.ws()
	if d.pos < len(d.body) {
		return d.syntax("data after the top-level value")
	}
	return err
}

func (d *decoder) syntax(what string) error {
	return fmt.Errorf("%w at byte %d: %s", ErrSyntax, d.pos, what)
}

func (d *decoder) peek() byte {
	if d.pos < len(d.body) {
		return d.body[d.pos]
	}
	return 0
}

func (d *decoder) ws() {
	for d.pos < len(d.body) {
		switch d.body[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// element decodes the signal at index i of the body.
func (d *decoder) element(i int, b *Batch) error {
	d.ws()
	start := d.pos
	if d.peek() != '{' {
		if err := d.skip(); err != nil {
			return err
		}
		b.Rejected = append(b.Rejected, Rejection{Index: i, Reason: "a signal must be a JSON object", Code: CodeNotObject, Raw: d.body[start:d.pos]})
		return nil
	}
	// The signal is filled in its place in the batch, not copied there: under load the
	// copy and its write barriers were a measurable part of the handler.
	n := len(b.Signals)
	b.Signals = slices.Grow(b.Signals, 1)[:n+1]
	problem, err := d.signal(&b.Signals[n])
	if err != nil {
		b.Signals = b.Signals[:n]
		return err
	}
	if problem.Reason == "" {
		b.Index = append(b.Index, i)
		b.Raw = append(b.Raw, d.body[start:d.pos])
		return nil
	}
	b.Signals = b.Signals[:n] // fill never ran: the slot is as it was
	problem.Index = i
	if problem.Code == CodeSchema && d.explained < MaxExplained {
		d.explained++
		schema := signalSchema
		if d.version > 1 {
			schema = d.typ.String() + ".v" + strconv.Itoa(d.version)
		}
		problem = d.explain(schema, d.body[start:d.pos], problem)
	}
	problem.Raw = d.body[start:d.pos]
	b.Rejected = append(b.Rejected, problem)
	return nil
}

// explain asks the oracle for the detailed report on a signal the fast path rejected.
func (d *decoder) explain(schema, raw string, fast Rejection) Rejection {
	err := d.r.Validate(schema, []byte(raw))
	ve, ok := err.(*ValidationError)
	if !ok || len(ve.Problems) == 0 {
		d.r.disagree.Add(1)
		return fast
	}
	fast.Pointer, fast.Reason = ve.Problems[0].Pointer, ve.Problems[0].Reason
	return fast
}

// signal scans one object into toks and then checks it against its type's rules.
func (d *decoder) signal(s *Signal) (Rejection, error) {
	var (
		toks    [numSlots]token
		seen    uint32
		unknown string
		hasUnk  bool
		props   string
	)
	d.bad, d.propsBad, d.version = Rejection{}, Rejection{}, 0
	d.pos++ // '{'
	if d.depth++; d.depth > MaxDepth {
		return Rejection{}, ErrTooDeep
	}
	d.ws()
	if d.peek() == '}' {
		d.pos++
	} else {
		for {
			d.ws()
			if d.peek() != '"' {
				return Rejection{}, d.syntax("expected a string key")
			}
			key, err := d.str(where{})
			if err != nil {
				return Rejection{}, err
			}
			d.ws()
			if d.peek() != ':' {
				return Rejection{}, d.syntax("expected ':' after a key")
			}
			d.pos++
			d.ws()
			sl := slotOf(key)
			switch {
			case sl == slotNone:
				if !hasUnk {
					unknown, hasUnk = key, true
				}
				if err := d.skip(); err != nil {
					return Rejection{}, err
				}
			default:
				if seen&(1<<sl) != 0 {
					d.flag(where{"", key}, "duplicate key "+strconv.Quote(key), CodeDuplicateKey)
				}
				seen |= 1 << sl
				if sl == slotProps && d.peek() == '{' {
					start := d.pos
					if err := d.props(); err != nil {
						return Rejection{}, err
					}
					props = d.body[start:d.pos]
					toks[sl].kind = kindObject
				} else if err := d.value(&toks[sl], where{"", key}); err != nil {
					return Rejection{}, err
				}
			}
			d.ws()
			c := d.peek()
			d.pos++
			if c == '}' {
				break
			}
			if c != ',' {
				return Rejection{}, d.syntax("expected ',' or '}' in a signal")
			}
		}
	}
	d.depth--
	if d.bad.Reason != "" {
		d.bad.Site = toks[slotSite].text
		return d.bad, nil
	}
	if p := d.check(&toks, seen, hasUnk, unknown); p.Reason != "" {
		p.Site = toks[slotSite].text
		return p, nil
	}
	d.fill(s, &toks, seen, props)
	return Rejection{}, nil
}

// check applies the compiled rules of the signal's type.
func (d *decoder) check(toks *[numSlots]token, seen uint32, hasUnk bool, unknown string) Rejection {
	fail := func(ptr, why string) Rejection { return Rejection{Pointer: ptr, Reason: why, Code: CodeSchema} }
	if seen&(1<<slotType) == 0 {
		return fail("", "missing properties: 'type'")
	}
	t := TypeUnknown
	if toks[slotType].kind == kindString {
		t = ParseType(toks[slotType].text)
	}
	if t == TypeUnknown {
		return fail("/type", "value must be one of \"pageview\", \"event\", \"exposure\"")
	}
	versions := d.r.rules[t]
	v := 1
	if seen&(1<<slotV) != 0 {
		tv := &toks[slotV]
		v = 0
		if tv.kind == kindNumber && tv.f >= 1 && tv.f < float64(len(versions)) && tv.f == float64(int(tv.f)) {
			v = int(tv.f)
		}
		if v == 0 {
			return fail("/v", "unknown schema version "+tv.String()+" of "+t.String())
		}
	}
	d.typ, d.version = t, v
	rs := versions[v]
	if hasUnk {
		return fail("", "additionalProperties "+strconv.Quote(unknown)+" not allowed")
	}
	if miss := rs.required &^ seen; miss != 0 {
		for sl := slot(0); sl < numSlots; sl++ {
			if miss&(1<<sl) != 0 {
				return fail("", "missing properties: '"+slotNames[sl]+"'")
			}
		}
	}
	for sl := slot(0); sl < numSlots; sl++ {
		if seen&(1<<sl) == 0 || sl == slotProps {
			continue
		}
		if rs.allowed&(1<<sl) == 0 {
			return fail("", "additionalProperties "+strconv.Quote(slotNames[sl])+" not allowed")
		}
		if why := rs.slots[sl].check(&toks[sl]); why != "" {
			return fail("/"+slotNames[sl], why)
		}
	}
	if seen&(1<<slotProps) != 0 {
		if rs.allowed&(1<<slotProps) == 0 {
			return fail("", "additionalProperties \"props\" not allowed")
		}
		if toks[slotProps].kind != kindObject {
			return fail("/props", "expected object, but got "+kindNames[toks[slotProps].kind])
		}
		if d.propsBad.Reason != "" {
			return fail(d.propsBad.Pointer, d.propsBad.Reason)
		}
	}
	return Rejection{}
}

// flag records the first structural problem of the current signal.
// The pointer is prefix + key, built only when it is needed: the hot path never
// concatenates.
func (d *decoder) flag(at where, why, code string) {
	if d.bad.Reason == "" {
		d.bad = Rejection{Pointer: at.pointer(), Reason: why, Code: code}
	}
}

// where names a value's place in the signal, for reports.
type where struct{ prefix, key string }

func (w where) pointer() string {
	if w.prefix == "" && w.key == "" {
		return ""
	}
	return w.prefix + "/" + escapePointer(w.key)
}

// value scans one value into t. Objects and arrays are skipped: no signal property but
// props may hold one, and the rules reject them by kind.
func (d *decoder) value(t *token, at where) error {
	switch c := d.peek(); {
	case c == '"':
		s, err := d.str(at)
		t.kind, t.text = kindString, s
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number(t, at)
	case c == '{':
		t.kind = kindObject
		return d.skip()
	case c == '[':
		t.kind = kindArray
		return d.skip()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if strings.HasPrefix(d.body[d.pos:], lit) {
				d.pos += len(lit)
				t.kind, t.lit = kindBool, lit
				if lit == "null" {
					t.kind = kindNull
				}
				return nil
			}
		}
		return d.syntax("expected a value")
	}
}

// props scans the flat props object, checking each name and value as it goes; the first
// schema problem is left in d.propsBad for check.
func (d *decoder) props() error {
	pr := &d.r.rules[TypePageview][1].props // identical for every type and version; checked in tests
	var (
		names [32]string
		n     int
		first Rejection
	)
	note := func(at where, why string) {
		if first.Reason == "" {
			first = Rejection{Pointer: at.pointer(), Reason: why}
		}
	}
	d.pos++
	if d.depth++; d.depth > MaxDepth {
		return ErrTooDeep
	}
	d.ws()
	if d.peek() == '}' {
		d.pos++
	} else {
		for {
			d.ws()
			if d.peek() != '"' {
				return d.syntax("expected a string key")
			}
			key, err := d.str(where{prefix: "/props"})
			if err != nil {
				return err
			}
			at := where{"/props", key}
			if n < len(names) {
				for _, k := range names[:n] {
					if k == key {
						d.flag(at, "duplicate key "+strconv.Quote(key), CodeDuplicateKey)
					}
				}
				names[n] = key
			}
			n++
			if why := pr.names.check(&token{kind: kindString, text: key}); why != "" {
				note(at, "property name "+strconv.Quote(key)+": "+why)
			}
			d.ws()
			if d.peek() != ':' {
				return d.syntax("expected ':' after a key")
			}
			d.pos++
			d.ws()
			var t token
			if err := d.value(&t, at); err != nil {
				return err
			}
			if why := pr.values.check(&t); why != "" {
				note(at, why)
			}
			d.ws()
			c := d.peek()
			d.pos++
			if c == '}' {
				break
			}
			if c != ',' {
				return d.syntax("expected ',' or '}' in props")
			}
		}
	}
	d.depth--
	if pr.maxProps >= 0 && n > pr.maxProps {
		note(where{key: "props"}, fmt.Sprintf("maxProperties: got %d, want at most %d", n, pr.maxProps))
	}
	if n > len(names) && first.Reason == "" {
		note(where{key: "props"}, "too many properties")
	}
	d.propsBad = first
	return nil
}

// number scans a JSON number literal.
func (d *decoder) number(t *token, at where) error {
	start := d.pos
	b := d.body
	i := d.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		d.pos = i
		return d.syntax("malformed number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == j {
			d.pos = i
			return d.syntax("malformed number")
		}
	}
	exp := 0
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		neg := false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			neg = b[i] == '-'
			i++
		}
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if exp <= maxExponent {
				exp = exp*10 + int(b[i]-'0')
			}
			i++
		}
		if i == j {
			d.pos = i
			return d.syntax("malformed number")
		}
		if neg {
			exp = -exp
		}
	}
	d.pos = i
	t.kind, t.lit = kindNumber, b[start:i]
	if len(t.lit) > maxNumberLen || exp > maxExponent || exp < -maxExponent {
		d.flag(at, "number "+abbrev(t.lit)+" is out of range", CodeNumberRange)
		return nil
	}
	t.f, _ = strconv.ParseFloat(t.lit, 64) // ±Inf on overflow, which every bound rejects
	return nil
}

// str scans a JSON string at d.pos and returns its decoded value. Without escapes the
// result is a substring of the body: no allocation.
func (d *decoder) str(at where) (string, error) {
	b := d.body
	start := d.pos + 1
	ascii := true
	i := start
	// Eight bytes at a time while none of them needs a look: no quote, backslash,
	// control byte or non-ASCII byte.
	for ; i+8 <= len(b); i += 8 {
		if special(word(b, i)) {
			break
		}
	}
	for ; i < len(b); i++ {
		c := b[i]
		if plain[c] {
			continue
		}
		switch {
		case c == '"':
			d.pos = i + 1
			s := b[start:i]
			if !ascii && !utf8.ValidString(s) {
				d.flag(at, "invalid UTF-8 in string", CodeInvalidUTF8)
			}
			return s, nil
		case c == '\\':
			return d.unescape(start, i, at)
		case c < 0x20:
			d.pos = i
			return "", d.syntax("control character in string")
		case c >= 0x80:
			ascii = false
		}
	}
	d.pos = len(b)
	return "", d.syntax("unterminated string")
}

// special says whether any byte of x is a quote, a backslash, below 0x20 or above
// 0x7f. It may say so of a word that has none (the byte loop then looks closer), never
// the other way.
func special(x uint64) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	zero := func(v uint64) uint64 { return (v - ones) &^ v & highs }
	return (zero(q) | zero(bs) | ((x - ones*0x20) &^ x & highs) | x&highs) != 0
}

// plain marks the bytes a string scan passes over without a second look.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// unescape decodes a string with escapes; i is the first backslash.
func (d *decoder) unescape(start, i int, at where) (string, error) {
	b := d.body
	out := make([]byte, 0, i-start+16)
	out = append(out, b[start:i]...)
	for i < len(b) {
		c := b[i]
		switch {
		case c == '"':
			d.pos = i + 1
			if !utf8.Valid(out) {
				d.flag(at, "invalid UTF-8 in string", CodeInvalidUTF8)
			}
			return string(out), nil
		case c < 0x20:
			d.pos = i
			return "", d.syntax("control character in string")
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch e := b[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(b, i+2)
			if !ok {
				d.pos = i
				return "", d.syntax("malformed \\u escape")
			}
			i += 6
			if utf16.IsSurrogate(r) {
				r2, ok := rune(0), false
				if i+1 < len(b) && b[i] == '\\' && b[i+1] == 'u' {
					r2, ok = hex4(b, i+2)
				}
				if dec := utf16.DecodeRune(r, r2); ok && dec != utf8.RuneError {
					r = dec
					i += 6
				} else {
					d.flag(at, "lone UTF-16 surrogate in string", CodeInvalidUTF8)
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			d.pos = i
			return "", d.syntax("invalid escape in string")
		}
		i += 2
	}
	d.pos = len(b)
	return "", d.syntax("unterminated string")
}

func hex4(b string, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(b[i:i+4], 16, 16)
	return rune(v), err == nil
}

// skip scans past one value of any shape without recursion, enforcing MaxDepth and
// JSON syntax. stack holds one bit per open level: 1 for an object.
func (d *decoder) skip() error {
	base := d.depth
	var stack uint64
	var t token
	for {
		// A value is expected here.
		d.ws()
		switch d.peek() {
		case '{', '[':
			obj := d.peek() == '{'
			d.pos++
			if d.depth++; d.depth > MaxDepth {
				return ErrTooDeep
			}
			lvl := uint(d.depth - base)
			stack &^= 1 << lvl
			if obj {
				stack |= 1 << lvl
			}
			d.ws()
			if c := d.peek(); (obj && c == '}') || (!obj && c == ']') {
				d.pos++
				d.depth--
				break
			}
			if obj {
				if err := d.key(); err != nil {
					return err
				}
			}
			continue
		default:
			if err := d.value(&t, where{}); err != nil {
				return err
			}
		}
		// After a value: close levels or move to the next member.
		for {
			if d.depth == base {
				return nil
			}
			obj := stack&(1<<uint(d.depth-base)) != 0
			d.ws()
			c := d.peek()
			d.pos++
			if (obj && c == '}') || (!obj && c == ']') {
				d.depth--
				continue
			}
			if c != ',' {
				d.pos--
				return d.syntax("expected ',' or a closing bracket")
			}
			if obj {
				if err := d.key(); err != nil {
					return err
				}
			}
			break
		}
	}
}

// key scans `"name":` inside a skipped object.
func (d *decoder) key() error {
	d.ws()
	if d.peek() != '"' {
		return d.syntax("expected a string key")
	}
	if _, err := d.str(where{}); err != nil {
		return err
	}
	d.ws()
	if d.peek() != ':' {
		return d.syntax("expected ':' after a key")
	}
	d.pos++
	return nil
}

// fill copies a valid signal's tokens into s and enriches it, setting every field: s
// may hold an earlier signal.
func (d *decoder) fill(s *Signal, toks *[numSlots]token, seen uint32, props string) {
	s.Type = ParseType(toks[slotType].text)
	s.ReceivedAt = d.meta.ReceivedAt
	s.EventAt = d.meta.ReceivedAt
	if seen&(1<<slotTS) != 0 && seen&(1<<slotSentAt) != 0 {
		s.EventAt = EventTime(d.meta.ReceivedAt, int64(toks[slotTS].f), int64(toks[slotSentAt].f))
	}
	s.Seq = 0
	s.Bot = d.meta.Bot
	s.Site = toks[slotSite].text
	s.AnonymousID = toks[slotAnonymousID].text
	s.EventID = toks[slotEventID].text
	if s.EventID == "" {
		s.EventID = newID()
	}
	s.URL = toks[slotURL].text
	s.Path = urlPath(s.URL)
	s.Referrer = toks[slotReferrer].text
	utm := [5]string{toks[slotUTMSource].text, toks[slotUTMMedium].text, toks[slotUTMCampaign].text,
		toks[slotUTMTerm].text, toks[slotUTMContent].text}
	if strings.Contains(s.URL, "utm_") {
		utmFromURL(s.URL, &utm, seen)
	}
	s.UTMSource, s.UTMMedium, s.UTMCampaign, s.UTMTerm, s.UTMContent = utm[0], utm[1], utm[2], utm[3], utm[4]
	s.Name = toks[slotName].text
	s.Experiment = toks[slotExperiment].text
	s.Variant = toks[slotVariant].text
	s.Value, s.HasValue = 0, false
	if seen&(1<<slotValue) != 0 {
		s.Value, s.HasValue = toks[slotValue].f, true
	}
	s.Props = props
}

// urlPath returns the path of an absolute URL, "/" when it has none. One pass over
// the bytes after the scheme. The path is always a piece of u, even "/" (a slash of
// "://"), so the buffer holds it as a span of the body like the other strings.
func urlPath(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return ""
	}
	root := u[i+1 : i+2]
	rest := u[i+3:]
	for j := 0; j < len(rest); j++ {
		switch rest[j] {
		case '?', '#':
			return root
		case '/':
			p := rest[j:]
			for k := 1; k < len(p); k++ {
				if p[k] == '?' || p[k] == '#' {
					return p[:k]
				}
			}
			return p
		}
	}
	return root
}

// maxUTM is the utm length limit of the schemas, applied to values taken from the URL.
const maxUTM = 200

// utmFromURL fills the utm values (source, medium, campaign, term, content) the signal
// did not carry from the URL's query: key=value pairs split on '&', the key before the
// first '=', values unescaped when they hold '%' or '+' and decode to valid UTF-8.
func utmFromURL(u string, utm *[5]string, seen uint32) {
	i := strings.IndexByte(u, '?')
	if i < 0 {
		return
	}
	q := u[i+1:]
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	for len(q) > 0 {
		kv := q
		if j := strings.IndexByte(q, '&'); j >= 0 {
			kv, q = q[:j], q[j+1:]
		} else {
			q = ""
		}
		if len(kv) < len("utm_term") || kv[:4] != "utm_" {
			continue // most pairs of a URL: no need to find their '='
		}
		k, v := kv, ""
		if eq := strings.IndexByte(kv, '='); eq >= 0 {
			k, v = kv[:eq], kv[eq+1:]
		}
		n := utmIndex(k)
		if n < 0 || seen&(1<<(slotUTMSource+slot(n))) != 0 || utm[n] != "" {
			continue
		}
		if strings.IndexByte(v, '%') >= 0 || strings.IndexByte(v, '+') >= 0 {
			if u, err := url.QueryUnescape(v); err == nil && utf8.ValidString(u) {
				v = u
			}
		}
		utm[n] = truncateRunes(v, maxUTM)
	}
}

// utmIndex is the place of a utm query key in utmFromURL's array, -1 for other keys.
func utmIndex(k string) int {
	if len(k) < len("utm_term") || k[:4] != "utm_" {
		return -1
	}
	switch k[4:] {
	case "source":
		return 0
	case "medium":
		return 1
	case "campaign":
		return 2
	case "term":
		return 3
	case "content":
		return 4
	}
	return -1
}

func truncateRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// newID makes an event_id for a signal that came without one: 128 random bits in hex.
func newID() string {
	var b [32]byte
	const hexd = "0123456789abcdef"
	x, y := rand.Uint64(), rand.Uint64()
	for i := 0; i < 16; i++ {
		b[i] = hexd[x>>(60-4*i)&0xf]
		b[16+i] = hexd[y>>(60-4*i)&0xf]
	}
	return string(b[:])
}

func escapePointer(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

func abbrev(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}
