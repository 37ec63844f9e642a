package eventlog

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/rungdev/rung/stitch/events"
	"github.com/santhosh-tekuri/jsonschema/v5"
)

// Definition declares one version of one event, schema first.
type Definition struct {
	Name    string
	Version int
	// Subject is the payload key whose value becomes subject_id.
	Subject string
	// Promote maps a promoted column (see events.Promotable) to the top-level payload
	// key whose value is copied into it at emit time.
	Promote map[string]string
	// Schema is a JSON Schema the payload must satisfy. Validate, when set, is used
	// instead: it lets an event whose schema lives elsewhere (lead_created, in package
	// schemas) be checked by its owner, e.g. Validate: func(b []byte) error {
	// return reg.ValidateEvent("lead_created", b) }.
	Schema   []byte
	Validate func(payload []byte) error
}

type key struct {
	name    string
	version int
}

// Definitions is a compiled, read-only set of event definitions; safe for concurrent use.
type Definitions struct {
	defs map[key]compiled
}

type compiled struct {
	Definition
	schema *jsonschema.Schema
}

// NewDefinitions compiles defs. A duplicate name and version, an unknown promoted column
// or a schema that does not compile is an error naming the definition.
func NewDefinitions(defs ...Definition) (*Definitions, error) {
	out := &Definitions{defs: make(map[key]compiled, len(defs))}
	for _, def := range defs {
		if err := out.add(def); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (ds *Definitions) add(def Definition) error {
	id := def.Name + " v" + strconv.Itoa(def.Version)
	probe := events.Event{ID: "x", Name: def.Name, Version: def.Version, OccurredAt: aTime}
	if err := probe.Check(); err != nil {
		return fmt.Errorf("define %s: %w", id, err)
	}
	k := key{def.Name, def.Version}
	if _, dup := ds.defs[k]; dup {
		return fmt.Errorf("define %s: defined twice", id)
	}
	for col := range def.Promote {
		if !slices.Contains(events.Promotable, col) || col == "subject_id" {
			return fmt.Errorf("define %s: cannot promote into %q (want one of %s)", id, col,
				strings.Join(events.Promotable[1:], ", "))
		}
	}
	c := compiled{Definition: def}
	switch {
	case def.Validate != nil:
	case len(def.Schema) > 0:
		url := "rung:///eventlog/" + def.Name + ".v" + strconv.Itoa(def.Version) + ".json"
		comp := jsonschema.NewCompiler()
		if err := comp.AddResource(url, bytes.NewReader(def.Schema)); err != nil {
			return fmt.Errorf("define %s: schema: %w", id, err)
		}
		s, err := comp.Compile(url)
		if err != nil {
			return fmt.Errorf("define %s: schema: %w", id, err)
		}
		c.schema = s
	default:
		return fmt.Errorf("define %s: no schema and no Validate function", id)
	}
	ds.defs[k] = c
	return nil
}

//go:embed defs/*.json
var ladderDefs embed.FS

// Ladder returns the definitions of the ladder's own example events (contacts, leads,
// deals), compiled from the JSON Schemas in defs/. A schema names its subject key and
// promoted columns with the x-rung-subject and x-rung-promote keywords. Extra
// definitions (such as lead_created, validated by package schemas) are added with them.
func Ladder(extra ...Definition) (*Definitions, error) {
	files, err := fs.Glob(ladderDefs, "defs/*.json")
	if err != nil {
		return nil, fmt.Errorf("list event schemas: %w", err)
	}
	sort.Strings(files)
	var defs []Definition
	for _, f := range files {
		def, err := DefinitionFromSchema(f, mustRead(ladderDefs, f))
		if err != nil {
			return nil, err
		}
		defs = append(defs, def)
	}
	return NewDefinitions(append(defs, extra...)...)
}

func mustRead(fsys fs.FS, name string) []byte {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		panic("BUG: embedded schema " + name + " unreadable: " + err.Error())
	}
	return b
}

// DefinitionFromSchema reads a Definition from a schema file named <name>.v<N>.json
// (file is used for the name and version; schema is its content).
func DefinitionFromSchema(file string, schema []byte) (Definition, error) {
	base := file[strings.LastIndexByte(file, '/')+1:]
	stem, ok := strings.CutSuffix(base, ".json")
	i := strings.LastIndex(stem, ".v")
	if !ok || i < 1 {
		return Definition{}, fmt.Errorf("event schema %s: want a file named <event>.v<N>.json", file)
	}
	v, err := strconv.Atoi(stem[i+2:])
	if err != nil {
		return Definition{}, fmt.Errorf("event schema %s: version %q is not a number", file, stem[i+2:])
	}
	var meta struct {
		Subject string            `json:"x-rung-subject"`
		Promote map[string]string `json:"x-rung-promote"`
	}
	if err := json.Unmarshal(schema, &meta); err != nil {
		return Definition{}, fmt.Errorf("event schema %s: %w", file, err)
	}
	return Definition{Name: stem[:i], Version: v, Subject: meta.Subject, Promote: meta.Promote, Schema: schema}, nil
}

// Lookup returns the definition of name at version.
func (ds *Definitions) Lookup(name string, version int) (Definition, bool) {
	c, ok := ds.defs[key{name, version}]
	return c.Definition, ok
}

// Validate checks payload against the definition of name at version.
func (ds *Definitions) Validate(name string, version int, payload []byte) error {
	c, ok := ds.defs[key{name, version}]
	if !ok {
		return fmt.Errorf("%w: %s v%d", ErrUndefined, name, version)
	}
	if c.Validate != nil {
		if err := c.Validate(payload); err != nil {
			return fmt.Errorf("%w: %s v%d: %w", ErrPayload, name, version, err)
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("%w: %s v%d: not JSON: %w", ErrPayload, name, version, err)
	}
	if err := c.schema.Validate(doc); err != nil {
		return fmt.Errorf("%w: %s v%d: %w", ErrPayload, name, version, err)
	}
	return nil
}
