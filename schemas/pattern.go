package schemas

import (
	"fmt"
	"math/bits"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// matcher matches a schema "pattern".
type matcher interface {
	MatchString(s string) bool
	String() string
}

// compilePattern compiles a schema pattern, in Go's syntax (see ecmaToGo). Anchored
// sequences of literals and character classes with ?, * or + — every pattern rung's
// schemas use — get a small position-set matcher that does no backtracking and no
// allocation, and that BenchmarkPattern shows faster than regexp on each of those
// patterns; anything else falls back to regexp, which is also what the oracle uses. The
// differential tests hold the two to the same answers.
func compilePattern(pat string) (matcher, error) {
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, err
	}
	if m, ok := compileSeq(pat); ok {
		return m, nil
	}
	return re, nil
}

// seq is a pattern ^item item ...$ where each item matches one rune from a class, once
// (one), any number of times (star) or at most once (quest). Plus is one followed by
// star. States are positions in items; bit n is "matched everything".
type seq struct {
	src     string
	items   []seqItem
	closure []uint64 // states reachable from each position without reading

	// A DFA over ASCII, built at compile time from the position sets: one table lookup
	// per byte. dfa[state<<8|c] is the next state; -1 when nothing can match, and
	// nonASCII for c >= 0x80, where the NFA takes over.
	sets []uint64
	dfa  []int16
	// stay[state][c] says that byte c leaves the DFA in state, for states that loop on
	// many bytes ([^\s]* in a URL): a run of such bytes is scanned without the
	// state-to-state dependency of the table walk. nil for the other states.
	stay []*[256]bool
	// graphic[state] says that state's stay row holds every byte from '!' to '~', so
	// runs of them are skipped eight bytes at a time.
	graphic []bool
}

const nonASCII = -2

type seqItem struct {
	ranges []rune // lo, hi pairs
	ascii  [4]uint32
	kind   uint8 // one, star, quest
}

const (
	one uint8 = iota
	star
	quest
)

func compileSeq(pat string) (*seq, bool) {
	re, err := syntax.Parse(pat, syntax.Perl)
	if err != nil {
		return nil, false
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat || len(re.Sub) < 2 ||
		re.Sub[0].Op != syntax.OpBeginText || re.Sub[len(re.Sub)-1].Op != syntax.OpEndText {
		return nil, false
	}
	s := &seq{src: pat}
	for _, sub := range re.Sub[1 : len(re.Sub)-1] {
		if !s.add(sub) {
			return nil, false
		}
	}
	if len(s.items) >= 63 {
		return nil, false
	}
	n := len(s.items)
	s.closure = make([]uint64, n+1)
	for i := n; i >= 0; i-- {
		s.closure[i] = 1 << i
		if i < n && s.items[i].kind != one {
			s.closure[i] |= s.closure[i+1]
		}
	}
	s.buildDFA()
	return s, true
}

// maxDFAStates bounds the table; patterns with more position sets use the NFA alone.
const maxDFAStates = 64

func (s *seq) buildDFA() {
	index := map[uint64]int16{s.closure[0]: 0}
	s.sets = []uint64{s.closure[0]}
	for i := 0; i < len(s.sets); i++ {
		var row [256]int16
		for c := 128; c < 256; c++ {
			row[c] = nonASCII
		}
		for c := rune(0); c < 128; c++ {
			next := s.step(s.sets[i], c)
			if next == 0 {
				row[c] = -1
				continue
			}
			j, ok := index[next]
			if !ok {
				if len(s.sets) == maxDFAStates {
					s.sets, s.dfa = nil, nil
					return
				}
				j = int16(len(s.sets))
				index[next] = j
				s.sets = append(s.sets, next)
			}
			row[c] = j
		}
		s.dfa = append(s.dfa, row[:]...)
	}
	s.loopRows()
}

// minLoop is how many bytes a state must loop on to get a stay row: below it, runs
// are too short to pay for the switch of loops.
const minLoop = 16

func (s *seq) loopRows() {
	s.stay = make([]*[256]bool, len(s.sets))
	s.graphic = make([]bool, len(s.sets))
	for d := range s.sets {
		var row [256]bool
		n := 0
		for c := 0; c < 128; c++ {
			if int(s.dfa[d<<8|c]) == d {
				row[c] = true
				n++
			}
		}
		if n >= minLoop {
			s.stay[d] = &row
			s.graphic[d] = true
			for c := '!'; c <= '~'; c++ {
				s.graphic[d] = s.graphic[d] && row[c]
			}
		}
	}
}

// step moves the position set cur over one rune.
func (s *seq) step(cur uint64, r rune) uint64 {
	n := len(s.items)
	var next uint64
	for st := cur &^ (1 << n); st != 0; st &= st - 1 {
		p := bits.TrailingZeros64(st)
		it := &s.items[p]
		if !it.match(r) {
			continue
		}
		if it.kind == star {
			next |= s.closure[p]
		} else {
			next |= s.closure[p+1]
		}
	}
	return next
}

func (s *seq) add(re *syntax.Regexp) bool {
	if re.Flags&syntax.FoldCase != 0 {
		return false
	}
	switch re.Op {
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			s.items = append(s.items, newItem([]rune{r, r}, one))
		}
		return true
	case syntax.OpCharClass:
		s.items = append(s.items, newItem(re.Rune, one))
		return true
	case syntax.OpAnyCharNotNL:
		s.items = append(s.items, newItem([]rune{0, '\n' - 1, '\n' + 1, utf8.MaxRune}, one))
		return true
	case syntax.OpStar, syntax.OpQuest, syntax.OpPlus:
		sub := re.Sub[0]
		var ranges []rune
		switch {
		case sub.Flags&syntax.FoldCase != 0:
			return false
		case sub.Op == syntax.OpCharClass:
			ranges = sub.Rune
		case sub.Op == syntax.OpLiteral && len(sub.Rune) == 1:
			ranges = []rune{sub.Rune[0], sub.Rune[0]}
		case sub.Op == syntax.OpAnyCharNotNL:
			ranges = []rune{0, '\n' - 1, '\n' + 1, utf8.MaxRune}
		default:
			return false
		}
		switch re.Op {
		case syntax.OpStar:
			s.items = append(s.items, newItem(ranges, star))
		case syntax.OpQuest:
			s.items = append(s.items, newItem(ranges, quest))
		case syntax.OpPlus:
			s.items = append(s.items, newItem(ranges, one), newItem(ranges, star))
		}
		return true
	}
	return false
}

func newItem(ranges []rune, kind uint8) seqItem {
	it := seqItem{ranges: ranges, kind: kind}
	for c := rune(0); c < 128; c++ {
		if inRanges(ranges, c) {
			it.ascii[c>>5] |= 1 << (c & 31)
		}
	}
	return it
}

func inRanges(ranges []rune, r rune) bool {
	for i := 0; i+1 < len(ranges); i += 2 {
		if r >= ranges[i] && r <= ranges[i+1] {
			return true
		}
	}
	return false
}

func (it *seqItem) match(r rune) bool {
	if r < 128 {
		return it.ascii[r>>5]&(1<<(r&31)) != 0
	}
	return inRanges(it.ranges, r)
}

// MatchString reports whether the whole of in matches.
func (s *seq) MatchString(in string) bool {
	cur, i := s.closure[0], 0
	if s.dfa != nil {
		d, table := 0, s.dfa
		for i < len(in) {
			next := table[d<<8|int(in[i])]
			if next < 0 {
				if next == nonASCII {
					break
				}
				return false
			}
			d = int(next)
			i++
			if row := s.stay[d]; row != nil {
				if s.graphic[d] {
					for i+8 <= len(in) && graphic(word(in, i)) {
						i += 8
					}
				}
				for i < len(in) && row[in[i]] {
					i++
				}
			}
		}
		cur = s.sets[d]
	}
	for i < len(in) { // the rest, from the first non-ASCII rune
		r, size := utf8.DecodeRuneInString(in[i:])
		i += size
		if cur = s.step(cur, r); cur == 0 {
			return false
		}
	}
	return cur&(1<<len(s.items)) != 0
}

func (s *seq) String() string { return s.src }

// word returns the eight bytes of s from i, little-endian: one load on amd64.
func word[T string | []byte](s T, i int) uint64 {
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// graphic says whether every byte of x is from '!' to '~'. A byte below '!' borrows
// only from bytes that are themselves below it, and one above '~' carries only out of
// bytes already flagged, so the answer is exact where it matters: never true of a word
// with a byte outside.
func graphic(x uint64) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	below := (x - ones*'!') &^ x
	above := x + ones*(0x80-'~'-1) | x
	return (below|above)&highs == 0
}

// ecmaSpace is ECMA-262's \s in Go syntax, without brackets: WhiteSpace (tab, vertical
// tab, form feed, U+FEFF and the Space_Separator category, which holds the space and
// U+00A0) and LineTerminator (\n, \r, U+2028, U+2029). Go's \s is only [\t\n\f\r ].
const ecmaSpace = `\t\n\v\f\r\x{2028}\x{2029}\x{feff}\p{Zs}`

// ecmaToGo rewrites a schema pattern, which JSON Schema defines as an ECMA-262 regular
// expression, into Go's syntax with the same meaning where the two differ in a way a
// schema is likely to meet: \s and \S, and '.', which in ECMA-262 matches no line
// terminator. Everything else is passed through, and Go's parser refuses what it does
// not know. The shapes it cannot rewrite faithfully are errors: \S inside a class, and
// ECMA-262's empty classes [] and [^].
func ecmaToGo(pat string) (string, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pat); i++ {
		c := pat[i]
		switch {
		case c == '\\' && i+1 < len(pat):
			i++
			switch e := pat[i]; {
			case e == 's' && inClass:
				b.WriteString(ecmaSpace)
			case e == 's':
				b.WriteString("[" + ecmaSpace + "]")
			case e == 'S' && inClass:
				return "", fmt.Errorf("pattern %q: \\S inside a character class is not supported", pat)
			case e == 'S':
				b.WriteString("[^" + ecmaSpace + "]")
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			if strings.HasPrefix(pat[i+1:], "^") {
				i++
				b.WriteByte('^')
			}
			if strings.HasPrefix(pat[i+1:], "]") {
				return "", fmt.Errorf("pattern %q: an empty character class ([] or [^]) is not supported", pat)
			}
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		case c == '.' && !inClass:
			b.WriteString(`[^\n\r\x{2028}\x{2029}]`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
