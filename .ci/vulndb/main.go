// Command vulndb builds a Go vulnerability database in the v1 layout
// (https://go.dev/security/vuln/database) from a directory of OSV JSON
// files, such as data/osv of the golang.org/x/vulndb module, so that
// govulncheck can run with -db file://DIR and no network.
//
// It writes DIR/index/db.json, DIR/index/modules.json, DIR/index/vulns.json
// and DIR/ID/<id>.json with the same index contents as x/vulndb's own
// cmd/indexdb. It is a stdlib-only copy because building cmd/indexdb pulls
// in x/vulndb's cloud dependencies and takes minutes on a fresh machine.
// No .json.gz files are written: govulncheck reads the plain files from a
// file:// database and the compressed ones only over HTTP.
//
// It lives under .ci/ (a leading dot keeps it out of ./... patterns) and
// is run by .ci/vulncheck as: go run .ci/vulndb/main.go -vulns SRC -out DIR
package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("vulndb: ")
	vulns := flag.String("vulns", "", "directory of OSV JSON files (e.g. data/osv of golang.org/x/vulndb)")
	out := flag.String("out", "", "directory to write the v1 database to (must not exist or be empty)")
	modified := flag.String("modified", "", "RFC3339 time to record in index/db.json when it is later than every entry's (the source's snapshot time)")
	flag.Parse()
	if *vulns == "" || *out == "" {
		log.Fatal("flags -vulns and -out are required")
	}
	var floor time.Time
	if *modified != "" {
		t, err := time.Parse(time.RFC3339, *modified)
		if err != nil {
			log.Fatalf("flag -modified: %v", err)
		}
		floor = t.UTC()
	}
	n, err := build(*vulns, *out, floor)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %d entries to %s", n, *out)
}

// entry is the part of an OSV entry the index needs; the entry itself is
// copied through unchanged (compacted) so no field is lost.
type entry struct {
	ID       string   `json:"id"`
	Modified string   `json:"modified"`
	Aliases  []string `json:"aliases,omitempty"`
	Affected []struct {
		Package struct {
			Name string `json:"name"`
		} `json:"package"`
		Ranges []struct {
			Type   string `json:"type"`
			Events []struct {
				Introduced string `json:"introduced,omitempty"`
				Fixed      string `json:"fixed,omitempty"`
			} `json:"events"`
		} `json:"ranges,omitempty"`
	} `json:"affected"`
}

// The index types mirror x/vulndb's internal/database so the files match
// what vuln.go.dev serves, field for field.
type (
	dbMeta struct {
		Modified string `json:"modified"`
	}
	module struct {
		Path  string       `json:"path"`
		Vulns []moduleVuln `json:"vulns"`
	}
	moduleVuln struct {
		ID       string `json:"id"`
		Modified string `json:"modified"`
		Fixed    string `json:"fixed,omitempty"`
	}
	vuln struct {
		ID       string   `json:"id"`
		Modified string   `json:"modified"`
		Aliases  []string `json:"aliases,omitempty"`
	}
)

func build(src, dst string, floor time.Time) (int, error) {
	files, err := os.ReadDir(src)
	if err != nil {
		return 0, fmt.Errorf("read OSV directory: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dst, "ID"), 0o755); err != nil {
		return 0, fmt.Errorf("create database directory: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dst, "index"), 0o755); err != nil {
		return 0, fmt.Errorf("create database directory: %w", err)
	}

	var (
		latest  time.Time
		modules = map[string]*module{}
		vulns   []vuln
		seen    = map[string]bool{}
	)
	for _, f := range files {
		name := f.Name()
		if f.IsDir() || filepath.Ext(name) != ".json" || name == "index.json" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return 0, fmt.Errorf("read OSV entry: %w", err)
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return 0, fmt.Errorf("parse OSV entry %s: %w", name, err)
		}
		if e.ID == "" || strings.ContainsAny(e.ID, `/\`) {
			return 0, fmt.Errorf("OSV entry %s: bad id %q", name, e.ID)
		}
		if seen[e.ID] {
			return 0, fmt.Errorf("OSV entry %s: id %q appears twice", name, e.ID)
		}
		seen[e.ID] = true
		mod, err := time.Parse(time.RFC3339, e.Modified)
		if err != nil {
			return 0, fmt.Errorf("OSV entry %s: modified: %w", name, err)
		}
		mod = mod.UTC()
		modStr := mod.Format(time.RFC3339)
		if mod.After(latest) {
			latest = mod
		}

		vulns = append(vulns, vuln{ID: e.ID, Modified: modStr, Aliases: e.Aliases})
		for _, a := range e.Affected {
			path := a.Package.Name
			if path == "" {
				return 0, fmt.Errorf("OSV entry %s: affected package without a name", name)
			}
			m := modules[path]
			if m == nil {
				m = &module{Path: path, Vulns: []moduleVuln{}}
				modules[path] = m
			}
			fixed := ""
			for _, r := range a.Ranges {
				if r.Type != "SEMVER" {
					continue
				}
				// Same rule as x/vulndb's osvutils.LatestFixed: the latest
				// fix, unless something is introduced after it.
				for _, ev := range r.Events {
					if ev.Fixed != "" && before(fixed, ev.Fixed) {
						fixed = ev.Fixed
					}
				}
				for _, ev := range r.Events {
					if ev.Introduced != "" && ev.Introduced != "0" && before(fixed, ev.Introduced) {
						fixed = ""
						break
					}
				}
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: modStr, Fixed: fixed})
		}

		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return 0, fmt.Errorf("compact OSV entry %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dst, "ID", e.ID+".json"), buf.Bytes(), 0o644); err != nil {
			return 0, fmt.Errorf("write entry: %w", err)
		}
	}
	if len(vulns) == 0 {
		return 0, fmt.Errorf("no OSV entries (*.json) in %s", src)
	}

	if floor.After(latest) {
		latest = floor
	}
	slices.SortFunc(vulns, func(a, b vuln) int { return strings.Compare(a.ID, b.ID) })
	mods := make([]*module, 0, len(modules))
	for _, m := range modules {
		slices.SortStableFunc(m.Vulns, func(a, b moduleVuln) int { return strings.Compare(a.ID, b.ID) })
		mods = append(mods, m)
	}
	slices.SortFunc(mods, func(a, b *module) int { return strings.Compare(a.Path, b.Path) })

	for name, v := range map[string]any{
		"db.json":      dbMeta{Modified: latest.Format(time.RFC3339)},
		"modules.json": mods,
		"vulns.json":   vulns,
	} {
		b, err := json.Marshal(v)
		if err != nil {
			return 0, fmt.Errorf("encode index/%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dst, "index", name), b, 0o644); err != nil {
			return 0, fmt.Errorf("write index: %w", err)
		}
	}
	return len(vulns), nil
}

// before reports whether OSV version v sorts before w. OSV versions are
// semver without the leading "v"; like golang.org/x/mod/semver, an invalid
// version sorts before every valid one, so before("", w) is true for any
// valid w.
func before(v, w string) bool { return compare(v, w) < 0 }

type semver struct {
	major, minor, patch string
	pre                 []string
}

var errSemver = errors.New("invalid semantic version")

func parse(v string) (semver, error) {
	var s semver
	var ok bool
	if s.major, v, ok = num(v); !ok {
		return s, errSemver
	}
	if v == "" { // "1" is shorthand for "1.0.0", as in x/mod/semver.
		s.minor, s.patch = "0", "0"
		return s, nil
	}
	if v[0] != '.' {
		return s, errSemver
	}
	if s.minor, v, ok = num(v[1:]); !ok {
		return s, errSemver
	}
	if v == "" {
		s.patch = "0"
		return s, nil
	}
	if v[0] != '.' {
		return s, errSemver
	}
	if s.patch, v, ok = num(v[1:]); !ok {
		return s, errSemver
	}
	if strings.HasPrefix(v, "-") {
		v = v[1:]
		pre := v
		if i := strings.IndexByte(v, '+'); i >= 0 {
			pre, v = v[:i], v[i:]
		} else {
			v = ""
		}
		s.pre = strings.Split(pre, ".")
		for _, id := range s.pre {
			if !ident(id) || (isNum(id) && len(id) > 1 && id[0] == '0') {
				return s, errSemver
			}
		}
	}
	if strings.HasPrefix(v, "+") {
		for _, id := range strings.Split(v[1:], ".") {
			if !ident(id) {
				return s, errSemver
			}
		}
		v = ""
	}
	if v != "" {
		return s, errSemver
	}
	return s, nil
}

// num splits a decimal number without leading zeros off the front of v.
func num(v string) (n, rest string, ok bool) {
	i := 0
	for i < len(v) && '0' <= v[i] && v[i] <= '9' {
		i++
	}
	if i == 0 || (i > 1 && v[0] == '0') {
		return "", v, false
	}
	return v[:i], v[i:], true
}

func ident(id string) bool {
	if id == "" {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

func isNum(id string) bool {
	for _, c := range id {
		if c < '0' || c > '9' {
			return false
		}
	}
	return id != ""
}

func cmpNum(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func compare(v, w string) int {
	a, errA := parse(v)
	b, errB := parse(w)
	switch {
	case errA != nil && errB != nil:
		return 0
	case errA != nil:
		return -1
	case errB != nil:
		return 1
	}
	if c := cmpNum(a.major, b.major); c != 0 {
		return c
	}
	if c := cmpNum(a.minor, b.minor); c != 0 {
		return c
	}
	if c := cmpNum(a.patch, b.patch); c != 0 {
		return c
	}
	// A release sorts after its prereleases.
	switch {
	case a.pre == nil && b.pre == nil:
		return 0
	case a.pre == nil:
		return 1
	case b.pre == nil:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		x, y := a.pre[i], b.pre[i]
		if x == y {
			continue
		}
		nx, ny := isNum(x), isNum(y)
		switch {
		case nx && ny:
			return cmpNum(x, y)
		case nx:
			return -1
		case ny:
			return 1
		default:
			return strings.Compare(x, y)
		}
	}
	return cmp.Compare(len(a.pre), len(b.pre))
}
