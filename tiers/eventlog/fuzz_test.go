package eventlog_test

import (
	"testing"

	"github.com/rungdev/rung/tiers/eventlog"
)

// FuzzDefinitionFromSchema: any file name and content either yields a definition whose
// name is usable or an error; it never panics.
func FuzzDefinitionFromSchema(f *testing.F) {
	f.Add("defs/deal_closed.v1.json", []byte(`{"x-rung-subject":"deal_id","x-rung-promote":{"source":"source"},"type":"object"}`))
	f.Add("x.v.json", []byte(`{}`))
	f.Add(".v1.json", []byte(`{}`))
	f.Add("a.v99999999999999999999.json", []byte(`{}`))
	f.Add("a.v1.json", []byte(`{"x-rung-promote":[1]}`))
	f.Fuzz(func(t *testing.T, file string, schema []byte) {
		def, err := eventlog.DefinitionFromSchema(file, schema)
		if err != nil {
			return
		}
		if def.Name == "" {
			t.Fatalf("%q parsed to an empty name", file)
		}
		// Compiling may fail (bad schema, bad name), but must not panic.
		_, _ = eventlog.NewDefinitions(def)
	})
}
