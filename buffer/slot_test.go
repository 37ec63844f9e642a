package buffer

import (
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/rungdev/rung/schemas"
)

// TestSlotRoundTrip sets every field of a Signal, by reflection so that a field added
// to Signal and forgotten by slot fails here, and checks that it comes back whole:
// from spans of a body when every string lies in it, from a spilled copy when one
// does not.
func TestSlotRoundTrip(t *testing.T) {
	if n := reflect.TypeFor[schemas.Signal]().NumField(); n != numStrings+7 {
		t.Fatalf("schemas.Signal has %d fields; slot knows %d strings and 7 others", n, numStrings)
	}
	var body strings.Builder
	var want schemas.Signal
	v := reflect.ValueOf(&want).Elem()
	var strs []int
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			strs = append(strs, i)
			body.WriteString(`"` + v.Type().Field(i).Name + `",`)
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
	b := body.String()
	for _, i := range strs {
		name := v.Type().Field(i).Name
		at := strings.Index(b, `"`+name+`"`) + 1
		v.Field(i).SetString(b[at : at+len(name)])
	}
	want.Props = "" // an empty string: any address will do

	for _, tc := range []struct {
		name  string
		body  string
		edit  func(*schemas.Signal)
		spill bool
	}{
		{"all in the body", b, nil, false},
		{"no body", "", nil, true},
		{"event_id made by the collector", b, func(s *schemas.Signal) { s.EventID = strings.Repeat("e", 32) }, true},
		{"a string ending past the body", b[:strings.Index(b, "Variant")+3], nil, true},
		{"a string before the body", b[5:], nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := want
			if tc.edit != nil {
				tc.edit(&s)
			}
			var x slot
			x.pack(tc.body, &s)
			if (x.spill != nil) != tc.spill {
				t.Fatalf("spilled %v, want %v", x.spill != nil, tc.spill)
			}
			var got schemas.Signal
			got.URL = "left over from an earlier signal"
			x.unpack(&got)
			if !reflect.DeepEqual(got, s) {
				t.Fatalf("got  %+v\nwant %+v", got, s)
			}
			if !tc.spill && unsafe.StringData(got.URL) != unsafe.StringData(s.URL) {
				t.Error("the URL came back as a copy, not as the body's bytes")
			}
		})
	}
}
