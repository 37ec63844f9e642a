package schemas

import (
	"regexp"
	"testing"
)

// BenchmarkPattern runs each pattern of rung's schemas, as the registry compiles it, on
// a typical value: through the fast path's matcher and through regexp, which is what
// the oracle runs. Compare the two lines of each pattern within one run.
func BenchmarkPattern(b *testing.B) {
	r := newTestRegistry(b)
	rs := r.rules[TypePageview][1]
	cases := []struct {
		name  string
		rule  *rule
		input string
	}{
		{"site", &rs.slots[slotSite], "shop.example.com"},
		{"id", &rs.slots[slotAnonymousID], "0d6f7a3e-5a0b-4c1e-9c43-1f2e3d4c5b6a"},
		{"name", &r.rules[TypeEvent][1].slots[slotName], "form_submitted"},
		{"url", &rs.slots[slotURL], "https://example.com/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring"},
		{"url-non-ascii", &rs.slots[slotURL], "https://example.com/caf\u00e9/men\u00fc?q=\u00fcber"},
	}
	for _, c := range cases {
		m := c.rule.pattern
		if _, ok := m.(*seq); !ok {
			b.Fatalf("%s: the fast path runs regexp for %q", c.name, m)
		}
		re := regexp.MustCompile(m.String())
		if !m.MatchString(c.input) || !re.MatchString(c.input) {
			b.Fatalf("%s: %q does not match", c.name, c.input)
		}
		for _, impl := range []struct {
			name  string
			match func(string) bool
		}{{"seq", m.MatchString}, {"regexp", re.MatchString}} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(c.input)))
				for b.Loop() {
					if !impl.match(c.input) {
						b.Fatal("no match")
					}
				}
			})
		}
	}
}
