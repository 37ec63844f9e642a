package schemas

import (
	"math/bits"
	"regexp"
	"regexp/syntax"
	"unicode/utf8"
)

// matcher matches a schema "pattern".
type matcher interface {
	MatchString(s string) bool
	String() string
}

// compilePattern compiles a schema pattern. Anchored sequences of literals and character
// classes with ?, * or + — every pattern rung's schemas use — get a small position-set
// matcher that does no backtracking and no allocation and is several times faster than
// regexp; anything else falls back to regexp, which is also what the oracle uses. The
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
}

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
	return s, true
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

// MatchString reports whether the whole of str matches.
func (s *seq) MatchString(str string) bool {
	n := len(s.items)
	cur := s.closure[0]
	for i := 0; i < len(str); {
		r, size := rune(str[i]), 1
		if r >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(str[i:])
		}
		i += size
		var next uint64
		for st := cur &^ (1 << n); st != 0; st &= st - 1 {
			p := trailingZeros(st)
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
		if next == 0 {
			return false
		}
		cur = next
	}
	return cur&(1<<n) != 0
}

func (s *seq) String() string { return s.src }

func trailingZeros(x uint64) int { return bits.TrailingZeros64(x) }
