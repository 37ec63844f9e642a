package wal

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode feeds the record decoder arbitrary bytes: it never panics, returns a
// payload only with a matching checksum, and what it returns re-encodes to the same
// bytes. scan, which Open uses to find a segment's good prefix, agrees with it.
func FuzzDecode(f *testing.F) {
	f.Add(rec("a signal"))
	f.Add(append(rec("one"), rec("two")...))
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrTorn) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is neither ErrTorn nor ErrCorrupt", err)
			}
			if p != nil || n != 0 {
				t.Fatalf("error %v with a payload of %d bytes, length %d", err, len(p), n)
			}
		} else {
			if n != HeaderLen+len(p) || n > len(b) {
				t.Fatalf("length %d for a payload of %d bytes in %d", n, len(p), len(b))
			}
			if again := rec(string(p)); !bytes.Equal(again, b[:n]) {
				t.Fatalf("record %x re-encodes to %x", b[:n], again)
			}
		}
		good, records, why := scan(append([]byte(segmentMagic), b...))
		if (why == nil) != (good == len(segmentMagic)+len(b)) {
			t.Fatalf("scan: good prefix %d of %d with error %v", good, len(segmentMagic)+len(b), why)
		}
		if err == nil && records == 0 {
			t.Fatal("scan found no record where Decode found one")
		}
	})
}
