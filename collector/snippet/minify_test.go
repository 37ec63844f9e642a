package snippet

import (
	"errors"
	"strings"
	"testing"
)

func TestMinify(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"comment lines and indentation go", "// a comment\n  const x = 1\n    // another\n  f(x)\n", "const x=1\nf(x)\n"},
		{"spaces stay between words", "const a = typeof b\nreturn v\n", "const a=typeof b\nreturn v\n"},
		{"strings are kept", "f('a  b', \"c // d\", 'it\\'s  ')\n", "f('a  b',\"c // d\",'it\\'s  ')\n"},
		{"breaks go after openers and before closers", "f(a, {\n  b: 1,\n  c: [\n    2\n  ]\n})\n", "f(a,{b:1,c:[2]})\n"},
		{"other breaks stay", "a = 1\nb = 2\n;[c].forEach(f)\n", "a=1\nb=2\n;[c].forEach(f)\n"},
		{"shift and increment", "x = 1e3 << ++n\n", "x=1e3<<++n\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := minify([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("minify(%q) =\n%q\nwant\n%q", tc.in, got, tc.want)
			}
		})
	}
}

func TestMinifyRefuses(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"comment after code", "f() // why\n", "line 1: comment after code"},
		{"backtick", "const s = `x`\n", "line 1: backtick"},
		{"plus plus", "a = b + +c\n", "glue '+' to '+'"},
		{"minus minus", "a = b - -c\n", "glue '-' to '-'"},
		{"digit dot", "a = 1 .toString()\n", "glue '1' to '.'"},
		{"open string", "f('abc)\n", "line 1: string not closed"},
		{"line number", "ok()\n\n// c\nf() // x\n", "line 4:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := minify([]byte(tc.in))
			if !errors.Is(err, errMinify) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("minify(%q) error %v, want errMinify naming %q", tc.in, err, tc.want)
			}
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"gzip, deflate, br, zstd", true},
		{"br;q=1.0, GZIP;q=0.5", true},
		{"deflate, gzip;q=0", false},
		{"gzip; q=0.000", false},
		{"*", true},
		{"br", false},
		{"identity, x-gzip", false},
	}
	for _, tc := range tests {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

func TestETagMatch(t *testing.T) {
	const tag = `"0123456789ab"`
	for header, want := range map[string]bool{
		tag:                          true,
		`W/` + tag:                   true,
		`"other", ` + tag:            true,
		"*":                          true,
		`"other"`:                    false,
		"":                           false,
		`"0123456789ab-gz"`:          false,
		strings.Trim(tag, `"`):       false,
		`"0123456789ab", W/"x", "y"`: true,
	} {
		if got := etagMatch(header, tag); got != want {
			t.Errorf("etagMatch(%q) = %v, want %v", header, got, want)
		}
	}
}

// FuzzAcceptsGzip: the request header parsers take anything without panicking.
func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "br, gzip;q=0.5", "*;q=", ";;,,", `W/"x", *`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		acceptsGzip(h)
		etagMatch(h, `"abc"`)
	})
}
