package eventlog_test

import (
	"bytes"
	"encoding/json"
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

// FuzzEventCheck: an event Check accepts has a payload that is a JSON object (or empty).
func FuzzEventCheck(f *testing.F) {
	f.Add("ev-1", "deal_closed", 1, []byte(`{"a":1}`))
	f.Add("", "x", 0, []byte(`[`))
	f.Add("e", "Bad", 1, []byte(` {} `))
	f.Fuzz(func(t *testing.T, id, name string, version int, payload []byte) {
		e := eventlog.Event{ID: id, Name: name, Version: version, OccurredAt: march, Payload: payload}
		if err := e.Check(); err != nil {
			return
		}
		p := bytes.TrimSpace(payload)
		if len(p) == 0 {
			return
		}
		var obj map[string]any
		if err := json.Unmarshal(p, &obj); err != nil {
			t.Fatalf("accepted payload %q is not a JSON object: %v", payload, err)
		}
	})
}
