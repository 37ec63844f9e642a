package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderLen is the size of a record's frame header: the payload's length and a CRC-32C,
// both little-endian uint32.
const HeaderLen = 8

// MaxRecord bounds a record's payload, so a corrupt length never makes a reader
// allocate or skip gigabytes.
const MaxRecord = 16 << 20

// segmentMagic opens every segment file. A file that does not start with it (a crash
// between creating the file and writing its first bytes) holds nothing.
const segmentMagic = "RUNGWAL1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors Decode returns: the tail of a segment from that record on is cut.
var (
	ErrTorn    = errors.New("torn record")    // the file ends inside the record
	ErrCorrupt = errors.New("corrupt record") // the checksum or the length is wrong
)

// Begin appends room for a record's header to dst; the caller appends the payload, then
// calls Seal on everything from the header on.
func Begin(dst []byte) []byte {
	return append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
}

// Seal fills in the header of rec, a record made by Begin followed by its payload. The
// checksum covers the length too, so a zeroed tail (a file extended by the filesystem
// but never written) is never a valid empty record.
func Seal(rec []byte) {
	n := uint32(len(rec) - HeaderLen)
	binary.LittleEndian.PutUint32(rec, n)
	binary.LittleEndian.PutUint32(rec[4:], sum(rec[:4], rec[HeaderLen:]))
}

func sum(length, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(length, castagnoli), castagnoli, payload)
}

// Decode reads the record at the start of b and returns its payload (a subslice of b)
// and the record's whole length. It returns ErrTorn when b ends inside the record and
// ErrCorrupt when its length is out of bounds or its checksum does not match.
func Decode(b []byte) (payload []byte, n int, err error) {
	if len(b) < HeaderLen {
		return nil, 0, fmt.Errorf("%w: %d bytes of a %d-byte header", ErrTorn, len(b), HeaderLen)
	}
	l := binary.LittleEndian.Uint32(b)
	if l == 0 || l > MaxRecord {
		return nil, 0, fmt.Errorf("%w: length %d", ErrCorrupt, l)
	}
	if uint64(len(b)-HeaderLen) < uint64(l) {
		// A length that is itself corrupt also lands here when it points past the end;
		// either way the tail is cut.
		return nil, 0, fmt.Errorf("%w: %d of %d payload bytes", ErrTorn, len(b)-HeaderLen, l)
	}
	payload = b[HeaderLen : HeaderLen+int(l)]
	if got, want := sum(b[:4], payload), binary.LittleEndian.Uint32(b[4:]); got != want {
		return nil, 0, fmt.Errorf("%w: checksum %#08x, header says %#08x", ErrCorrupt, got, want)
	}
	return payload, HeaderLen + int(l), nil
}
