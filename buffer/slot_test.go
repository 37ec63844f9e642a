package buffer

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/rungdev/rung/schemas"
)

// TestSlotRoundTrip sets every field of a Signal, by reflection so that a field added
// to Signal and forgotten by slot fails here, and checks that it comes back whole, from
// an arena that holds other signals' strings before it, as a copy: nothing of it points
// into the memory it came from.
func TestSlotRoundTrip(t *testing.T) {
	if n := reflect.TypeFor[schemas.Signal]().NumField(); n != numStrings+7 {
		t.Fatalf("schemas.Signal has %d fields; slot knows %d strings and 7 others", n, numStrings)
	}
	var want schemas.Signal
	v := reflect.ValueOf(&want).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(strings.Repeat(v.Type().Field(i).Name, i%3))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int64:
			f.SetInt(1733450000123 - int64(i))
		case reflect.Uint64:
			f.SetUint(1817530130000000000)
		case reflect.Float64:
			f.SetFloat(49.5)
		case reflect.Uint8:
			f.SetUint(uint64(schemas.TypeExposure))
		default:
			t.Fatalf("field %s: slot does not know kind %s", v.Type().Field(i).Name, f.Kind())
		}
	}
	n := want.StringBytes()
	arena := append(make([]byte, 0, 64+n), "strings of the signals held before"...)
	var x slot
	arena = x.pack(arena, &want, n)
	if int(x.size) != n || len(arena) != len("strings of the signals held before")+n {
		t.Fatalf("packed %d bytes into %d, want %d", x.size, len(arena), n)
	}
	var got schemas.Signal
	got.URL = "left over from an earlier signal"
	x.unpack(&got, arena)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if unsafe.StringData(got.URL) == unsafe.StringData(want.URL) {
		t.Error("the URL came back as the original's bytes, not the arena's")
	}
	if charge(&want) != slotBytes+int64(n) {
		t.Errorf("charge %d, want slot %d + strings %d", charge(&want), slotBytes, n)
	}
}
