package snippet

import (
	"bytes"
	"fmt"
)

// minify takes out of t.js what a browser does not need. It is not a JavaScript
// minifier: it relies on the conventions written at the top of t.js, and refuses a file
// that breaks one it can see.
//
//   - A line whose first non-blank characters are // is a comment and goes; a comment
//     after code is refused, since joined lines would fall into it.
//   - A string is in single or double quotes, on one line; it is copied as it is.
//   - A regular expression holds no quote and no space.
//   - A run of spaces outside strings stays (as one space) only between two word
//     characters, as in `const x` or `return v`; dropping one must not glue a plus
//     to a plus, a minus to a minus, or a digit to a dot.
//   - A line break goes after { ( [ , and before } ) ], where it never ends a
//     statement; elsewhere it stays, since t.js leans on automatic semicolons.
func minify(src []byte) ([]byte, error) {
	var out []byte
	for n, line := range bytes.Split(src, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || bytes.HasPrefix(line, []byte("//")) {
			continue
		}
		min, err := minifyLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", errMinify, n+1, err)
		}
		if k := len(out); k > 0 && !bytes.ContainsRune([]byte("{([,"), rune(out[k-1])) &&
			!bytes.ContainsRune([]byte("})]"), rune(min[0])) {
			out = append(out, '\n')
		}
		out = append(out, min...)
	}
	return append(out, '\n'), nil
}

func minifyLine(line []byte) ([]byte, error) {
	out := make([]byte, 0, len(line))
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			out = append(out, c)
			if c == '\\' && i+1 < len(line) {
				i++
				out = append(out, line[i])
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
			out = append(out, c)
		case c == '`':
			return nil, fmt.Errorf("backtick string at column %d", i+1)
		case c == '/' && i+1 < len(line) && line[i+1] == '/':
			return nil, fmt.Errorf("comment after code at column %d", i+1)
		case c == ' ' || c == '\t':
			j := i
			for j < len(line) && (line[j] == ' ' || line[j] == '\t') {
				j++
			}
			if len(out) > 0 && j < len(line) {
				a, b := out[len(out)-1], line[j]
				switch {
				case word(a) && word(b):
					out = append(out, ' ')
				case a == b && (a == '+' || a == '-'), a >= '0' && a <= '9' && b == '.':
					return nil, fmt.Errorf("dropping the space at column %d would glue %q to %q", i+1, a, b)
				}
			}
			i = j - 1
		default:
			out = append(out, c)
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("string not closed on its line")
	}
	return out, nil
}

func word(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
