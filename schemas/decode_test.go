package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rungdev/rung/internal/harness"
)

func newTestRegistry(t testing.TB) *Registry {
	t.Helper()
	r, err := NewRegistry()
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return r
}

// validFixtures returns the bodies in testdata/valid by file name, in name order.
func validFixtures(t testing.TB) (names []string, bodies map[string][]byte) {
	t.Helper()
	files, _ := filepath.Glob("testdata/valid/*.json")
	if len(files) == 0 {
		t.Fatal("no fixtures in testdata/valid")
	}
	bodies = make(map[string][]byte, len(files))
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(f))
		bodies[filepath.Base(f)] = body
	}
	return names, bodies
}

func TestDecodeValidFixtures(t *testing.T) {
	r := newTestRegistry(t)
	names, bodies := validFixtures(t)
	for _, name := range names {
		body := bodies[name]
		t.Run(name, func(t *testing.T) {
			var b Batch
			if err := r.Decode(string(body), Meta{ReceivedAt: 1700000000000}, 100, &b); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(b.Rejected) > 0 {
				t.Fatalf("rejected: %+v", b.Rejected)
			}
			if len(b.Signals) == 0 {
				t.Fatal("no signals decoded")
			}
			for _, s := range b.Signals {
				if s.EventID == "" || s.ReceivedAt != 1700000000000 {
					t.Errorf("signal not enriched: %+v", s)
				}
				// The oracle must agree on every fixture, signal by signal.
				if err := r.Validate(s.Type.String()+".v1", mustSignalJSON(t, body, s)); err != nil {
					t.Errorf("oracle rejects a fixture the fast path accepted: %v", err)
				}
			}
		})
	}
}

// mustSignalJSON returns the raw object of s from a fixture body (one object or an array).
func mustSignalJSON(t *testing.T, body []byte, s Signal) []byte {
	t.Helper()
	var list []json.RawMessage
	if json.Unmarshal(body, &list) != nil {
		return body
	}
	for _, raw := range list {
		if strings.Contains(string(raw), `"`+s.AnonymousID+`"`) && strings.Contains(string(raw), `"`+s.Type.String()+`"`) {
			return raw
		}
	}
	t.Fatalf("signal %+v not found in fixture", s)
	return nil
}

func TestDecodeFields(t *testing.T) {
	r := newTestRegistry(t)
	body := `{"type":"pageview","site":"example.com","anonymous_id":"a1b2c3d4e5f6","event_id":"ev-0000001",` +
		`"url":"https://example.com/pricing/?utm_source=news%20letter&utm_medium=email&utm_campaign=spring#top",` +
		`"utm_campaign":"given","referrer":"https://news.example/","value":-2.5e3,"props":{"plan":"pro","n":3}}`
	var b Batch
	if err := r.Decode(body, Meta{ReceivedAt: 5, Bot: true}, 1, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Signals) != 1 {
		t.Fatalf("got %d signals, %+v", len(b.Signals), b.Rejected)
	}
	got := b.Signals[0]
	want := Signal{
		Type: TypePageview, Bot: true, HasValue: true, ReceivedAt: 5, EventAt: 5, Value: -2500,
		Site: "example.com", AnonymousID: "a1b2c3d4e5f6", EventID: "ev-0000001",
		URL:  "https://example.com/pricing/?utm_source=news%20letter&utm_medium=email&utm_campaign=spring#top",
		Path: "/pricing/", Referrer: "https://news.example/",
		UTMSource: "news letter", UTMMedium: "email", UTMCampaign: "given",
		Props: `{"plan":"pro","n":3}`,
	}
	if got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// invalidCase is one entry of testdata/invalid/cases.json: a signal and where and why
// it must be rejected.
type invalidCase struct {
	Name    string          `json:"name"`
	Body    json.RawMessage `json:"body"`
	Pointer string          `json:"pointer"`
	Reason  string          `json:"reason"`
}

func invalidCases(t testing.TB) []invalidCase {
	t.Helper()
	raw, err := os.ReadFile("testdata/invalid/cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []invalidCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases in testdata/invalid/cases.json")
	}
	return cases
}

func TestDecodeInvalidFixtures(t *testing.T) {
	r := newTestRegistry(t)
	for _, c := range invalidCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			var b Batch
			if err := r.Decode(string(c.Body), Meta{}, 1, &b); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(b.Signals) != 0 || len(b.Rejected) != 1 {
				t.Fatalf("want one rejection, got %d signals and %+v", len(b.Signals), b.Rejected)
			}
			rej := b.Rejected[0]
			if rej.Pointer != c.Pointer || rej.Code != CodeSchema || !strings.Contains(rej.Reason, c.Reason) {
				t.Errorf("got pointer %q code %q reason %q; want pointer %q, reason containing %q",
					rej.Pointer, rej.Code, rej.Reason, c.Pointer, c.Reason)
			}
			if r.Disagreements() != 0 {
				t.Errorf("fast path and oracle disagree")
			}
		})
	}
}

const okSignal = `{"type":"pageview","site":"example.com","anonymous_id":"visitor-0001","url":"https://example.com/"}`

func TestDecodeHostile(t *testing.T) {
	r := newTestRegistry(t)
	tests := []struct {
		name string
		body string
		err  error  // whole-body error, or
		code string // the code of the one rejection
		ptr  string
	}{
		{name: "empty", body: "", err: ErrEmpty},
		{name: "whitespace", body: " \n\t", err: ErrEmpty},
		{name: "empty array", body: "[]", err: ErrEmpty},
		{name: "scalar", body: "42", err: ErrNotSignals},
		{name: "string", body: `"x"`, err: ErrNotSignals},
		{name: "truncated", body: okSignal[:40], err: ErrSyntax},
		{name: "trailing garbage", body: okSignal + "x", err: ErrSyntax},
		{name: "two objects", body: okSignal + okSignal, err: ErrSyntax},
		{name: "trailing comma", body: `[` + okSignal + `,]`, err: ErrSyntax},
		{name: "single quotes", body: `{'type':'pageview'}`, err: ErrSyntax},
		{name: "bad literal", body: `{"type":tru}`, err: ErrSyntax},
		{name: "bad number", body: `{"value":01}`, err: ErrSyntax},
		{name: "bad escape", body: `{"type":"\x"}`, err: ErrSyntax},
		{name: "control char", body: "{\"type\":\"a\x01b\"}", err: ErrSyntax},
		{name: "deep array", body: strings.Repeat("[", 100000) + strings.Repeat("]", 100000), err: ErrTooDeep},
		{name: "deep in field", body: `{"x":` + strings.Repeat("[", 100000), err: ErrTooDeep},
		{name: "deep object", body: strings.Repeat(`{"a":`, 100000), err: ErrTooDeep},
		{name: "too many", body: "[" + okSignal + "," + okSignal + "," + okSignal + "]", err: ErrBatchTooLarge},
		{name: "invalid utf8", body: strings.Replace(okSignal, "example.com/", "example.com/\xff\xfe", 1), code: CodeInvalidUTF8, ptr: "/url"},
		{name: "lone surrogate", body: strings.Replace(okSignal, "example.com/", `example.com/\ud800`, 1), code: CodeInvalidUTF8, ptr: "/url"},
		{name: "reversed surrogates", body: strings.Replace(okSignal, "example.com/", `example.com/\udc00\ud800`, 1), code: CodeInvalidUTF8, ptr: "/url"},
		{name: "duplicate key", body: strings.Replace(okSignal, `"site":"example.com"`, `"site":"a.com","site":"example.com"`, 1), code: CodeDuplicateKey, ptr: "/site"},
		{name: "duplicate prop", body: strings.Replace(okSignal, `}`, `,"props":{"a":1,"a":2}}`, 1), code: CodeDuplicateKey, ptr: "/props/a"},
		{name: "huge exponent", body: strings.Replace(okSignal, `}`, `,"value":1e999999999}`, 1), code: CodeNumberRange, ptr: "/value"},
		{name: "long number", body: strings.Replace(okSignal, `}`, `,"value":`+strings.Repeat("9", 5000)+`}`, 1), code: CodeNumberRange, ptr: "/value"},
		{name: "not an object in batch", body: `[` + okSignal + `,"x"]`, code: CodeNotObject},
		{name: "huge string", body: strings.Replace(okSignal, "example.com/", "example.com/"+strings.Repeat("a", 1<<20), 1), code: CodeSchema, ptr: "/url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Batch
			err := r.Decode(tt.body, Meta{}, 2, &b)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				if len(b.Signals)+len(b.Rejected) != 0 {
					t.Fatalf("batch not emptied after a body error")
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(b.Rejected) != 1 {
				t.Fatalf("want one rejection, got %+v", b.Rejected)
			}
			if rej := b.Rejected[0]; rej.Code != tt.code || rej.Pointer != tt.ptr {
				t.Errorf("got %+v, want code %q pointer %q", rej, tt.code, tt.ptr)
			}
		})
	}
}

func TestDecodeAllocs(t *testing.T) {
	harness.SkipAllocsUnderRace(t)
	r := newTestRegistry(t)
	single := strings.Replace(okSignal, `}`, `,"event_id":"ev-0000001"}`, 1)
	batch := "[" + strings.TrimSuffix(strings.Repeat(single+",", 50), ",") + "]"
	var b Batch
	for _, body := range []string{single, batch} {
		allocs := testing.AllocsPerRun(100, func() {
			b.Reset()
			if err := r.Decode(body, Meta{}, 100, &b); err != nil || len(b.Rejected) > 0 {
				t.Fatalf("Decode: %v %+v", err, b.Rejected)
			}
		})
		if allocs != 0 {
			t.Errorf("Decode of %d bytes allocated %.1f times per run, want 0", len(body), allocs)
		}
	}
}

func TestPropsRulesAgreeAcrossTypes(t *testing.T) {
	// decoder.props uses the pageview rules for every type; that is only right while
	// the schemas share one props definition.
	r := newTestRegistry(t)
	for ty := TypeEvent; ty <= TypeExposure; ty++ {
		a, b := r.rules[TypePageview][1].props, r.rules[ty][1].props
		if a.maxProps != b.maxProps || a.values.types != b.values.types || a.values.maxLen != b.values.maxLen ||
			a.names.pattern.String() != b.names.pattern.String() {
			t.Errorf("%s props rules differ from pageview's", ty)
		}
	}
}

func TestSpecial(t *testing.T) {
	// One byte at each position of a word of plain bytes: special must say so exactly
	// when the byte loop would stop at it.
	for _, fill := range []byte{' ', 'a', '~', '!', '#', '[', ']'} {
		for c := 0; c < 256; c++ {
			for p := 0; p < 8; p++ {
				var x uint64
				for i := 0; i < 8; i++ {
					b := fill
					if i == p {
						b = byte(c)
					}
					x |= uint64(b) << (8 * i)
				}
				if got := special(x); got != !plain[c] {
					t.Fatalf("byte %#x at %d among %q: special says %v", c, p, fill, got)
				}
			}
		}
	}
}

// urlPathBefore and utmBefore are the first, plainer versions of urlPath and
// utmFromURL: FuzzURL holds the faster ones to the same answers.
func urlPathBefore(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return ""
	}
	rest := u[i+3:]
	j := strings.IndexAny(rest, "/?#")
	if j < 0 || rest[j] != '/' {
		return "/"
	}
	p := rest[j:]
	if k := strings.IndexAny(p, "?#"); k >= 0 {
		p = p[:k]
	}
	return p
}

func utmBefore(u string, utm *[5]string, seen uint32) {
	i := strings.IndexByte(u, '?')
	if i < 0 {
		return
	}
	q := u[i+1:]
	if j := strings.IndexByte(q, '#'); j >= 0 {
		q = q[:j]
	}
	keys := [...]string{"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"}
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(kv, "=")
		n := slices.Index(keys[:], k)
		if n < 0 || seen&(1<<(slotUTMSource+slot(n))) != 0 || utm[n] != "" {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			if u, err := url.QueryUnescape(v); err == nil && utf8.ValidString(u) {
				v = u
			}
		}
		utm[n] = truncateRunes(v, maxUTM)
	}
}

func FuzzURL(f *testing.F) {
	for _, s := range []string{
		"", "https://example.com", "https://example.com/", "http://x?y#z", "https://a/b/c?d=e#f",
		"https://example.com/pricing/?utm_source=news%20letter&utm_medium=email&utm_campaign=spring#top",
		"x://?utm_source=a+b&utm_source=c&utm_term&utm_content=%zz&=utm_medium&utm_medium==x%41",
		"https://h/p?utm_campaign=" + strings.Repeat("é", 300) + "&&utm_term=t#utm_content=no",
	} {
		f.Add(s, uint32(0))
		f.Add(s, uint32(1<<slotUTMMedium))
	}
	f.Fuzz(func(t *testing.T, u string, seen uint32) {
		if got, want := urlPath(u), urlPathBefore(u); got != want {
			t.Fatalf("urlPath(%q) = %q, want %q", u, got, want)
		}
		var got, want [5]string
		got[2], want[2] = "kept", "kept"
		utmFromURL(u, &got, seen)
		utmBefore(u, &want, seen)
		if got != want {
			t.Fatalf("utm of %q (seen %b): got %q, want %q", u, seen, got, want)
		}
	})
}

// fixtureSignals returns every signal object in testdata/valid and testdata/invalid, as
// raw JSON, named by where it comes from.
func fixtureSignals(t testing.TB) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	_, bodies := validFixtures(t)
	for name, body := range bodies {
		var list []json.RawMessage
		if json.Unmarshal(body, &list) != nil {
			list = []json.RawMessage{body}
		}
		for i, raw := range list {
			out[fmt.Sprintf("%s[%d]", name, i)] = raw
		}
	}
	for _, c := range invalidCases(t) {
		out["invalid: "+c.Name] = c.Body
	}
	return out
}

// TestFastPathAgreesWithOracle decides every fixture signal both ways: the fast path,
// compiled from the oracle's schemas, and the oracle itself.
func TestFastPathAgreesWithOracle(t *testing.T) {
	r := newTestRegistry(t)
	for name, raw := range fixtureSignals(t) {
		var b Batch
		if err := r.Decode(string(raw), Meta{}, 1, &b); err != nil {
			t.Fatalf("%s: Decode: %v", name, err)
		}
		fast := len(b.Signals) == 1
		oracle := r.Validate(signalSchema, raw)
		if fast != (oracle == nil) {
			t.Errorf("%s: fast path accepted=%v, oracle says %v", name, fast, oracle)
		}
		if fast == strings.HasPrefix(name, "invalid: ") {
			t.Errorf("%s: accepted=%v", name, fast)
		}
	}
	if r.Disagreements() != 0 {
		t.Error("the oracle accepted a signal the fast path rejected")
	}
}

// TestExplainedRejections: in a body of many rejected signals the oracle explains only
// the first MaxExplained, yet every rejection is listed with its index, pointer and
// reason, and the fast path's reason for the rest reads as the oracle's would (the
// schema's own pattern, not the Go form it is compiled to).
func TestExplainedRejections(t *testing.T) {
	r := newTestRegistry(t)
	const n = 50
	bad := strings.Replace(okSignal, `"url":"https://`, `"url":"ftp://`, 1)
	body := "[" + strings.TrimSuffix(strings.Repeat(bad+",", n), ",") + "]"
	oracle := r.Validate(signalSchema, []byte(bad))
	var ve *ValidationError
	if !errors.As(oracle, &ve) || len(ve.Problems) == 0 {
		t.Fatalf("the oracle accepts %s: %v", bad, oracle)
	}
	want := ve.Problems[0]
	var b Batch
	if err := r.Decode(body, Meta{}, n, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Signals) != 0 || len(b.Rejected) != n {
		t.Fatalf("%d accepted, %d rejected; want 0 and %d", len(b.Signals), len(b.Rejected), n)
	}
	for i, rej := range b.Rejected {
		if rej.Index != i || rej.Pointer != want.Pointer || rej.Reason != want.Reason || rej.Code != CodeSchema {
			t.Errorf("rejection %d: %+v; want index %d, pointer %q, reason %q", i, rej, i, want.Pointer, want.Reason)
		}
	}
	// One oracle run costs hundreds of allocations; the fast path's rejection none.
	one := testing.AllocsPerRun(20, func() {
		b.Reset()
		r.Validate(signalSchema, []byte(bad))
	})
	all := testing.AllocsPerRun(20, func() {
		b.Reset()
		if err := r.Decode(body, Meta{}, n, &b); err != nil {
			t.Fatal(err)
		}
	})
	if all > (MaxExplained+1)*one {
		t.Errorf("decoding %d rejected signals: %.0f allocations, more than %d oracle runs (%.0f each)", n, all, MaxExplained+1, one)
	}
}
