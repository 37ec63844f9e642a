package schemas

import (
	"regexp"
	"strings"
	"testing"
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
