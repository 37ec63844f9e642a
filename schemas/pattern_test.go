package schemas

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The patterns rung's schemas use, plus shapes the sequence matcher must handle or
// refuse.
var testPatterns = []string{
	`^[A-Za-z0-9][A-Za-z0-9._:-]*$`, `^[A-Za-z0-9_-]+$`, `^[A-Za-z0-9_.:-]+$`,
	`^https?://[^\s/?#]+[^\s]*$`, `^[A-Z]{3}$`, `^a.b?c*$`, `abc`, `^(ab)+$`, `^é+[^é]$`,
}

func TestSeqCoversSchemaPatterns(t *testing.T) {
	for _, p := range testPatterns[:4] {
		if _, ok := compileSeq(p); !ok {
			t.Errorf("pattern %q falls back to regexp", p)
		}
	}
	// The patterns as the registry compiles them, ECMA-262 \s spelled out.
	r := newTestRegistry(t)
	for ty, versions := range r.rules {
		for _, rs := range versions {
			if rs == nil {
				continue
			}
			for _, rl := range append(rs.slots[:], rs.props.names, rs.props.values) {
				if rl.pattern == nil {
					continue
				}
				if _, ok := rl.pattern.(*seq); !ok {
					t.Errorf("%s: pattern %q falls back to regexp", Type(ty), rl.pattern)
				}
			}
		}
	}
}

func FuzzPattern(f *testing.F) {
	for _, s := range []string{"", "a", "abc", "https://x.example/p?q=1", "http:// x", "visitor-0001", "é", "éé\n", "AB", "ABC", "a\nb"} {
		for i := range testPatterns {
			f.Add(i, s)
		}
	}
	f.Fuzz(func(t *testing.T, i int, s string) {
		if i < 0 {
			i = -i
		}
		p := testPatterns[i%len(testPatterns)]
		m, err := compilePattern(p)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.MatchString(s), regexp.MustCompile(p).MatchString(s); got != want {
			t.Fatalf("pattern %q on %q: got %v, regexp says %v", p, s, got, want)
		}
	})
}

// TestGraphic checks the eight-byte test against the byte-by-byte one for every byte
// value in every place of a word, beside neighbours at both ends of the range.
func TestGraphic(t *testing.T) {
	for _, fill := range []byte{'!', 'a', '~'} {
		for pos := range 8 {
			for c := range 256 {
				b := []byte(strings.Repeat(string(fill), 8))
				b[pos] = byte(c)
				want := c >= '!' && c <= '~'
				if got := graphic(word(b, 0)); got != want {
					t.Fatalf("graphic(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}

// isECMASpace is ECMA-262's \s as the standard words it (WhiteSpace and LineTerminator),
// written out separately from ecmaSpace so the two check each other.
func isECMASpace(r rune) bool {
	switch r {
	case '\t', '\v', '\f', ' ', 0xa0, 0xfeff, '\n', '\r', 0x2028, 0x2029:
		return true
	}
	return unicode.Is(unicode.Zs, r)
}

func TestECMAToGo(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: `^[A-Za-z0-9_-]+$`, want: `^[A-Za-z0-9_-]+$`},
		{in: `^https?://[^\s/?#]+[^\s]*$`, want: `^https?://[^` + ecmaSpace + `/?#]+[^` + ecmaSpace + `]*$`},
		{in: `a\sb\Sc`, want: `a[` + ecmaSpace + `]b[^` + ecmaSpace + `]c`},
		{in: `^a.b$`, want: `^a[^\n\r\x{2028}\x{2029}]b$`},
		{in: `[.]\.`, want: `[.]\.`},
		{in: `\\s`, want: `\\s`},
		{in: `[^\S]`, err: `\S inside a character class`},
		{in: `a[]`, err: "empty character class"},
		{in: `[^]`, err: "empty character class"},
	}
	for _, tt := range tests {
		got, err := ecmaToGo(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("ecmaToGo(%q) = %q, %v; want an error about %s", tt.in, got, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("ecmaToGo(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestURLWhitespace puts each ECMA-262 whitespace character, and characters that look
// like whitespace but are not \s in ECMA-262, into a signal's URL: the fast path must
// refuse exactly the first, and the oracle must agree with it on every one.
func TestURLWhitespace(t *testing.T) {
	r := newTestRegistry(t)
	tests := []struct {
		name  string
		r     rune
		space bool
	}{
		{"tab", '\t', true}, {"line feed", '\n', true}, {"vertical tab", '\v', true},
		{"form feed", '\f', true}, {"carriage return", '\r', true}, {"space", ' ', true},
		{"no-break space", 0xa0, true}, {"ogham space mark", 0x1680, true},
		{"en quad", 0x2000, true}, {"hair space", 0x200a, true},
		{"line separator", 0x2028, true}, {"paragraph separator", 0x2029, true},
		{"narrow no-break space", 0x202f, true}, {"medium mathematical space", 0x205f, true},
		{"ideographic space", 0x3000, true}, {"byte order mark", 0xfeff, true},
		{"next line (Unicode White_Space, not ECMA \\s)", 0x85, false},
		{"zero width space", 0x200b, false}, {"mongolian vowel separator", 0x180e, false},
		{"word joiner", 0x2060, false}, {"e acute", 'é', false},
	}
	for _, tt := range tests {
		if isECMASpace(tt.r) != tt.space {
			t.Fatalf("%s: the table and isECMASpace disagree", tt.name)
		}
		for _, where := range []string{"host", "path"} {
			t.Run(tt.name+" in "+where, func(t *testing.T) {
				u := "https://exa" + string(tt.r) + "mple.com/"
				if where == "path" {
					u = "https://example.com/a" + string(tt.r) + "b"
				}
				body, _ := json.Marshal(map[string]string{"type": "pageview", "site": "example.com", "anonymous_id": "visitor-0001", "url": u})
				var b Batch
				if err := r.Decode(string(body), Meta{}, 1, &b); err != nil {
					t.Fatal(err)
				}
				if ok := len(b.Signals) == 1; ok == tt.space {
					t.Fatalf("url %q: fast path accepted=%v, want %v (%+v)", u, ok, !tt.space, b.Rejected)
				}
				if ok := r.Validate(signalSchema, body) == nil; ok == tt.space {
					t.Fatalf("url %q: oracle accepted=%v, want %v", u, ok, !tt.space)
				}
				if tt.space && (b.Rejected[0].Pointer != "/url" || !strings.Contains(b.Rejected[0].Reason, `[^\\s/?#]`)) {
					t.Errorf("rejection %+v: want /url and the schema's own pattern", b.Rejected[0])
				}
				if r.Disagreements() != 0 {
					t.Fatal("fast path and oracle disagree")
				}
			})
		}
	}
}

// FuzzECMASpace holds the compiled \s and \S patterns to isECMASpace rune by rune, and
// the fast path's URL rule to the oracle's on the same strings.
func FuzzECMASpace(f *testing.F) {
	for _, s := range []string{"", "a", " ", "\u00a0", "a\u2028b", "\ufeff", "\u0085", "\u200b", "https://x.example/p", "https://x\u3000y/"} {
		f.Add(s)
	}
	r := newTestRegistry(f)
	var pats []matcher
	for _, p := range []string{`^\s*$`, `^\S*$`, `^[^\s]*$`, `^[\s]*$`} {
		g, err := ecmaToGo(p)
		if err != nil {
			f.Fatal(err)
		}
		m, err := compilePattern(g)
		if err != nil {
			f.Fatal(err)
		}
		pats = append(pats, m)
	}
	urlRule := &r.rules[TypePageview][1].slots[slotURL]
	urlOracle := r.oracle["pageview.v1"].Properties["url"]
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		all := !strings.ContainsFunc(s, func(r rune) bool { return !isECMASpace(r) })
		none := !strings.ContainsFunc(s, isECMASpace)
		for i, want := range []bool{all, none, none, all} {
			if got := pats[i].MatchString(s); got != want {
				t.Fatalf("%s on %q: %v, want %v", pats[i], s, got, want)
			}
		}
		for _, u := range []string{s, "https://" + s, "https://example.com/" + s} {
			why := urlRule.check(&token{kind: kindString, text: u})
			if err := urlOracle.Validate(u); (why == "") != (err == nil) {
				t.Fatalf("url %q: fast path says %q, oracle %v", u, why, err)
			}
		}
	})
}
