package buffer

import (
	"unsafe"

	"github.com/rungdev/rung/schemas"
)

// slot is a held signal. Its strings are kept as spans of the request body they were
// decoded from, so a slot holds one pointer where a schemas.Signal holds fifteen, and a
// string takes 8 bytes (a span) where a Signal's takes 16. Under a burst the buffer is
// most of the heap: every GC cycle marks it, and every slot written while one runs pays
// a write barrier per pointer; with Signals those were a quarter of the server's CPU.
type slot struct {
	body  string          // the bytes the spans are of
	spill *schemas.Signal // the whole signal, when a string lies outside body
	spans [numStrings]span
	at    int64
	ev    int64  // EventAt
	seq   uint64 // Seq
	value float64
	tag   uint32 // the caller's, given back with the batch (see Config.Done)
	typ   schemas.Type
	bot   bool
	has   bool
}

// span is a string of a slot: body[off : off+n].
type span struct{ off, n uint32 }

// numStrings is the number of string fields of schemas.Signal.
const numStrings = 15

// pack stores s in sl, as spans of body when every string of s lies inside body.
// Otherwise (a string the decoder had to unescape, an event_id it made, or no body
// given) sl keeps a copy of s, allocated here, and pack returns false.
func (sl *slot) pack(body string, s *schemas.Signal) bool {
	// Field by field, not *sl = slot{...}: that would write the whole slot twice.
	sl.at, sl.ev, sl.seq, sl.value, sl.typ, sl.bot, sl.has = s.ReceivedAt, s.EventAt, s.Seq, s.Value, s.Type, s.Bot, s.HasValue
	sl.spill = nil
	if len(body) > 0 && len(body) < 1<<32 {
		base := uintptr(unsafe.Pointer(unsafe.StringData(body)))
		sp := &sl.spans
		if in(&sp[0], base, len(body), s.Site) && in(&sp[1], base, len(body), s.AnonymousID) &&
			in(&sp[2], base, len(body), s.EventID) && in(&sp[3], base, len(body), s.URL) &&
			in(&sp[4], base, len(body), s.Path) && in(&sp[5], base, len(body), s.Referrer) &&
			in(&sp[6], base, len(body), s.UTMSource) && in(&sp[7], base, len(body), s.UTMMedium) &&
			in(&sp[8], base, len(body), s.UTMCampaign) && in(&sp[9], base, len(body), s.UTMTerm) &&
			in(&sp[10], base, len(body), s.UTMContent) && in(&sp[11], base, len(body), s.Name) &&
			in(&sp[12], base, len(body), s.Experiment) && in(&sp[13], base, len(body), s.Variant) &&
			in(&sp[14], base, len(body), s.Props) {
			sl.body = body
			return true
		}
	}
	c := *s
	sl.body, sl.spill = "", &c
	return false
}

// in sets sp to v's place in the body at base, of n bytes, and reports whether v lies
// there. Only addresses are compared: nothing is made a pointer again.
func in(sp *span, base uintptr, n int, v string) bool {
	if len(v) == 0 {
		*sp = span{}
		return true
	}
	p := uintptr(unsafe.Pointer(unsafe.StringData(v)))
	if p < base || p-base+uintptr(len(v)) > uintptr(n) {
		return false
	}
	*sp = span{uint32(p - base), uint32(len(v))}
	return true
}

// unpack sets every field of s from sl.
func (sl *slot) unpack(s *schemas.Signal) {
	if sl.spill != nil {
		*s = *sl.spill
		return
	}
	b, sp := sl.body, &sl.spans
	*s = schemas.Signal{
		Type: sl.typ, Bot: sl.bot, HasValue: sl.has, ReceivedAt: sl.at, EventAt: sl.ev, Seq: sl.seq, Value: sl.value,
		Site: sub(b, sp[0]), AnonymousID: sub(b, sp[1]), EventID: sub(b, sp[2]), URL: sub(b, sp[3]),
		Path: sub(b, sp[4]), Referrer: sub(b, sp[5]), UTMSource: sub(b, sp[6]), UTMMedium: sub(b, sp[7]),
		UTMCampaign: sub(b, sp[8]), UTMTerm: sub(b, sp[9]), UTMContent: sub(b, sp[10]), Name: sub(b, sp[11]),
		Experiment: sub(b, sp[12]), Variant: sub(b, sp[13]), Props: sub(b, sp[14]),
	}
}

func sub(b string, sp span) string { return b[sp.off : sp.off+sp.n] }
