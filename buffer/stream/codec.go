package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/rungdev/rung/schemas"
)

// codecVersion is the first byte of every encoded signal. A reader refuses versions it
// does not know, so collectors and aggregators of different releases fail loudly
// instead of misreading each other. Version 1 (written before signals had an event time
// and a sequence) is still read: its signals' event time is their receive time.
const codecVersion = 2

// Flag bits of the byte after the type.
const (
	flagBot      = 1 << iota
	flagHasValue // Signal.HasValue
	flagValue    // eight bytes of Value follow (Value's bits are not zero)
	flagsKnown   = flagBot | flagHasValue | flagValue
)

// maxEncodedHeader bounds what precedes the strings: version, type, flags, a varint
// ReceivedAt, a varint lag, a uvarint Seq and the value.
const maxEncodedHeader = 3 + 3*binary.MaxVarintLen64 + 8

// errTruncated is what Parse says about input that ends inside a field.
var errTruncated = errors.New("truncated")

// EncodedSize returns an upper bound of len(Append(nil, s)), for sizing buffers.
func EncodedSize(s *schemas.Signal) int {
	return maxEncodedHeader + 15*binary.MaxVarintLen32 + s.StringBytes()
}

// Append appends the wire form of s to dst and returns the extended slice. It allocates
// nothing when dst has room (see EncodedSize).
//
// Layout (version 2): version byte, type byte, flags byte, ReceivedAt as a zigzag
// varint, ReceivedAt − EventAt as a zigzag varint, Seq as a uvarint, Value as 8
// little-endian bytes when flagValue is set, then the 15 strings in Signal field order,
// each as a uvarint length and its bytes.
func Append(dst []byte, s *schemas.Signal) []byte {
	var flags byte
	if s.Bot {
		flags |= flagBot
	}
	if s.HasValue {
		flags |= flagHasValue
	}
	bits := math.Float64bits(s.Value)
	if bits != 0 {
		flags |= flagValue
	}
	dst = append(dst, codecVersion, byte(s.Type), flags)
	dst = binary.AppendVarint(dst, s.ReceivedAt)
	dst = binary.AppendVarint(dst, s.ReceivedAt-s.EventAt)
	dst = binary.AppendUvarint(dst, s.Seq)
	if bits != 0 {
		dst = binary.LittleEndian.AppendUint64(dst, bits)
	}
	for _, f := range [...]string{s.Site, s.AnonymousID, s.EventID, s.URL, s.Path, s.Referrer,
		s.UTMSource, s.UTMMedium, s.UTMCampaign, s.UTMTerm, s.UTMContent,
		s.Name, s.Experiment, s.Variant, s.Props} {
		dst = binary.AppendUvarint(dst, uint64(len(f)))
		dst = append(dst, f...)
	}
	return dst
}

// encodedLen is len(Append(nil, s)), exactly.
func encodedLen(s *schemas.Signal) int {
	n := 3 + varintLen(s.ReceivedAt) + varintLen(s.ReceivedAt-s.EventAt) + uvarintLen(s.Seq)
	if math.Float64bits(s.Value) != 0 {
		n += 8
	}
	for _, f := range [...]string{s.Site, s.AnonymousID, s.EventID, s.URL, s.Path, s.Referrer,
		s.UTMSource, s.UTMMedium, s.UTMCampaign, s.UTMTerm, s.UTMContent,
		s.Name, s.Experiment, s.Variant, s.Props} {
		n += uvarintLen(uint64(len(f))) + len(f)
	}
	return n
}

func varintLen(v int64) int {
	u := uint64(v) << 1
	if v < 0 {
		u = ^u
	}
	return uvarintLen(u)
}

func uvarintLen(u uint64) int {
	n := 1
	for ; u >= 0x80; u >>= 7 {
		n++
	}
	return n
}

// AppendFrame appends s as one frame of a message: its encoding's length as a uvarint,
// then the encoding. A message of the stream is one or more frames, signals bound for
// one partition (see Publisher), so JetStream's cost is per message, not per signal.
func AppendFrame(dst []byte, s *schemas.Signal) []byte {
	return Append(binary.AppendUvarint(dst, uint64(encodedLen(s))), s)
}

// ParseFrames decodes every frame of a message and appends the signals to dst. On
// error it returns dst as it was: a message is read whole or not at all.
func ParseFrames(b []byte, dst []schemas.Signal) ([]schemas.Signal, error) {
	n0 := len(dst)
	for i := 0; len(b) > 0; i++ {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			clear(dst[n0:])
			return dst[:n0], fmt.Errorf("frame %d: bad or truncated length", i)
		}
		dst = append(dst, schemas.Signal{})
		if err := Parse(b[k:k+int(n)], &dst[len(dst)-1]); err != nil {
			clear(dst[n0:])
			return dst[:n0], fmt.Errorf("frame %d: %w", i, err)
		}
		b = b[k+int(n):]
	}
	if len(dst) == n0 {
		return dst, errors.New("a message without frames")
	}
	return dst, nil
}

// Parse decodes one signal written by Append into s. The strings of s share one copy
// of b, so b may be reused as soon as Parse returns. On error s is left zeroed (never
// half filled) and the error says which field was bad.
func Parse(b []byte, s *schemas.Signal) error {
	*s = schemas.Signal{}
	if err := parse(b, s); err != nil {
		*s = schemas.Signal{}
		return fmt.Errorf("parse signal (%d bytes): %w", len(b), err)
	}
	return nil
}

func parse(b []byte, s *schemas.Signal) error {
	if len(b) < 3 {
		return fmt.Errorf("header: %w", errTruncated)
	}
	if b[0] != codecVersion && b[0] != 1 {
		return fmt.Errorf("unknown codec version %d (this build reads %d)", b[0], codecVersion)
	}
	t := schemas.Type(b[1])
	if t == schemas.TypeUnknown || t > schemas.TypeExposure {
		return fmt.Errorf("unknown signal type %d", b[1])
	}
	b0, flags := b[0], b[2]
	if flags&^flagsKnown != 0 {
		return fmt.Errorf("unknown flags %#x", flags)
	}
	s.Type = t
	s.Bot = flags&flagBot != 0
	s.HasValue = flags&flagHasValue != 0
	b = b[3:]
	v, n := binary.Varint(b)
	if n <= 0 {
		return fmt.Errorf("received_at: bad varint")
	}
	s.ReceivedAt, s.EventAt = v, v
	b = b[n:]
	if b0 >= 2 {
		lag, n := binary.Varint(b)
		if n <= 0 {
			return fmt.Errorf("event time: bad varint")
		}
		s.EventAt = s.ReceivedAt - lag
		b = b[n:]
		if s.Seq, n = binary.Uvarint(b); n <= 0 {
			return fmt.Errorf("seq: bad varint")
		}
		b = b[n:]
	}
	if flags&flagValue != 0 {
		if len(b) < 8 {
			return fmt.Errorf("value: %w", errTruncated)
		}
		s.Value = math.Float64frombits(binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	// One copy of the rest; every string is a substring of it.
	all := string(b)
	off := 0
	for i, f := range [...]*string{&s.Site, &s.AnonymousID, &s.EventID, &s.URL, &s.Path, &s.Referrer,
		&s.UTMSource, &s.UTMMedium, &s.UTMCampaign, &s.UTMTerm, &s.UTMContent,
		&s.Name, &s.Experiment, &s.Variant, &s.Props} {
		l, n := binary.Uvarint(b[off:])
		if n <= 0 {
			return fmt.Errorf("string %d (%s) length: %w", i, fieldNames[i], errTruncated)
		}
		off += n
		if l > uint64(len(b)-off) {
			return fmt.Errorf("string %d (%s): length %d past the end (%d bytes left): %w",
				i, fieldNames[i], l, len(b)-off, errTruncated)
		}
		*f = all[off : off+int(l)]
		off += int(l)
	}
	if off != len(b) {
		return fmt.Errorf("%d trailing bytes", len(b)-off)
	}
	return nil
}

var fieldNames = [...]string{"site", "anonymous_id", "event_id", "url", "path", "referrer",
	"utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content",
	"name", "experiment", "variant", "props"}
