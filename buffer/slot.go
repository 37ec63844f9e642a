package buffer

import (
	"unsafe"

	"github.com/rungdev/rung/schemas"
)

// slot is a held signal. Its strings are copied into its chunk's arena and kept as spans
// of it, so a slot holds no pointer at all: under a burst the buffer is most of the
// heap, and a pointer in it would be marked on every GC cycle and cost a write barrier
// on every push during one; and nothing the buffer holds keeps a request body alive, as
// a string pointing into the body would (the whole body, for the smallest signal in it).
type slot struct {
	spans [numStrings]span // of the chunk's arena, or of its big string when big
	at    int64
	ev    int64  // EventAt
	seq   uint64 // Seq
	value float64
	size  uint32 // bytes of the strings
	tag   uint32 // the caller's, given back with the batch (see Config.Done)
	typ   schemas.Type
	bot   bool
	has   bool
	big   bool // the strings lie in the chunk's big[i], not in its arena
}

// span is a string of a slot: its bytes at off, n long.
type span struct{ off, n uint32 }

// numStrings is the number of string fields of schemas.Signal.
const numStrings = 15

// slotBytes is what one slot costs, whatever its signal.
const slotBytes = int64(unsafe.Sizeof(slot{}))

// charge is what the buffer counts against Config.MaxBytes for holding s: its slot and
// a copy of its strings.
func charge(s *schemas.Signal) int64 { return slotBytes + int64(s.StringBytes()) }

// pack stores s in sl, its n bytes of strings appended to dst, which has room for them,
// and returns dst.
func (sl *slot) pack(dst []byte, s *schemas.Signal, n int) []byte {
	// Field by field, not *sl = slot{...}: that would write the whole slot twice.
	sl.at, sl.ev, sl.seq, sl.value, sl.typ, sl.bot, sl.has, sl.size = s.ReceivedAt, s.EventAt, s.Seq, s.Value, s.Type, s.Bot, s.HasValue, uint32(n)
	at := len(dst)
	dst = dst[:at+n] // one bounds check here, and plain copies below
	sp := &sl.spans
	at = put(dst, at, &sp[0], s.Site)
	at = put(dst, at, &sp[1], s.AnonymousID)
	at = put(dst, at, &sp[2], s.EventID)
	at = put(dst, at, &sp[3], s.URL)
	at = put(dst, at, &sp[4], s.Path)
	at = put(dst, at, &sp[5], s.Referrer)
	at = put(dst, at, &sp[6], s.UTMSource)
	at = put(dst, at, &sp[7], s.UTMMedium)
	at = put(dst, at, &sp[8], s.UTMCampaign)
	at = put(dst, at, &sp[9], s.UTMTerm)
	at = put(dst, at, &sp[10], s.UTMContent)
	at = put(dst, at, &sp[11], s.Name)
	at = put(dst, at, &sp[12], s.Experiment)
	at = put(dst, at, &sp[13], s.Variant)
	put(dst, at, &sp[14], s.Props)
	return dst
}

// put copies v to dst at at, sets sp to where it lies, and returns where it ends.
func put(dst []byte, at int, sp *span, v string) int {
	*sp = span{uint32(at), uint32(len(v))}
	return at + copy(dst[at:], v)
}

// unpack sets every field of s from sl, whose strings lie in b. The strings of s are
// b's bytes, not copies: they are valid while the chunk is not reused.
func (sl *slot) unpack(s *schemas.Signal, b []byte) {
	sp := &sl.spans
	*s = schemas.Signal{
		Type: sl.typ, Bot: sl.bot, HasValue: sl.has, ReceivedAt: sl.at, EventAt: sl.ev, Seq: sl.seq, Value: sl.value,
		Site: sub(b, sp[0]), AnonymousID: sub(b, sp[1]), EventID: sub(b, sp[2]), URL: sub(b, sp[3]),
		Path: sub(b, sp[4]), Referrer: sub(b, sp[5]), UTMSource: sub(b, sp[6]), UTMMedium: sub(b, sp[7]),
		UTMCampaign: sub(b, sp[8]), UTMTerm: sub(b, sp[9]), UTMContent: sub(b, sp[10]), Name: sub(b, sp[11]),
		Experiment: sub(b, sp[12]), Variant: sub(b, sp[13]), Props: sub(b, sp[14]),
	}
}

func sub(b []byte, sp span) string {
	if sp.n == 0 {
		return ""
	}
	return unsafe.String(&b[sp.off], sp.n)
}
