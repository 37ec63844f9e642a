package schemas

import (
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"
)

// TestVersionedChange adds pageview v3 beside v1 and v2, as a release would, and proves
// that v1 signals still validate under the rules they were written for while v3 signals
// get v3's.
func TestVersionedChange(t *testing.T) {
	fsys := fstest.MapFS{}
	sub, _ := fs.Sub(files, "json")
	names, _ := fs.Glob(sub, "*.json")
	for _, n := range names {
		b, _ := fs.ReadFile(sub, n)
		fsys[n] = &fstest.MapFile{Data: b}
	}
	v3, err := os.ReadFile("testdata/versions/pageview.v3.json")
	if err != nil {
		t.Fatal(err)
	}
	fsys["pageview.v3.json"] = &fstest.MapFile{Data: v3}
	r, err := newRegistry(fsys)
	if err != nil {
		t.Fatal(err)
	}
	long := "https://example.com/" + strings.Repeat("a", 3000)
	tests := []struct {
		name, body string
		ok         bool
		ptr        string
	}{
		{"v1 without v", okSignal, true, ""},
		{"v1 with v", strings.Replace(okSignal, `}`, `,"v":1}`, 1), true, ""},
		{"v1 keeps its url limit", strings.Replace(okSignal, "https://example.com/", long, 1), false, "/url"},
		{"v3 takes the longer url", `{"type":"pageview","v":3,"site":"example.com","anonymous_id":"visitor-0001","referrer":"","url":"` + long + `"}`, true, ""},
		{"v3 requires referrer", `{"type":"pageview","v":3,"site":"example.com","anonymous_id":"visitor-0001","url":"https://example.com/"}`, false, ""},
		{"no v4", `{"type":"pageview","v":4,"site":"example.com","anonymous_id":"visitor-0001","url":"https://example.com/"}`, false, "/v"},
		{"event has no v3", `{"type":"event","v":3,"site":"example.com","anonymous_id":"visitor-0001","name":"x"}`, false, "/v"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Batch
			if err := r.Decode(tt.body, Meta{}, 1, &b); err != nil {
				t.Fatal(err)
			}
			if ok := len(b.Signals) == 1; ok != tt.ok {
				t.Fatalf("accepted=%v, want %v (%+v)", ok, tt.ok, b.Rejected)
			}
			if !tt.ok {
				if got := b.Rejected[0].Pointer; got != tt.ptr {
					t.Errorf("pointer %q, want %q (%s)", got, tt.ptr, b.Rejected[0].Reason)
				}
				if !strings.Contains(b.Rejected[0].Reason, "referrer") && tt.name == "v3 requires referrer" {
					t.Errorf("reason %q does not name the missing referrer", b.Rejected[0].Reason)
				}
			}
			if r.Disagreements() != 0 {
				t.Fatal("fast path and oracle disagree")
			}
		})
	}
}

func TestRegistryRefusesBadVersions(t *testing.T) {
	sub, _ := fs.Sub(files, "json")
	base := fstest.MapFS{}
	names, _ := fs.Glob(sub, "*.json")
	for _, n := range names {
		b, _ := fs.ReadFile(sub, n)
		base[n] = &fstest.MapFile{Data: b}
	}
	v3, _ := os.ReadFile("testdata/versions/pageview.v3.json")
	for name, mutate := range map[string]func(fstest.MapFS){
		"gap": func(m fstest.MapFS) {
			m["pageview.v4.json"] = &fstest.MapFile{Data: []byte(strings.ReplaceAll(string(v3), `"const": 3`, `"const": 4`))}
		},
		"wrong const": func(m fstest.MapFS) {
			m["pageview.v3.json"] = &fstest.MapFile{Data: []byte(strings.ReplaceAll(string(v3), `"const": 3`, `"const": 1`))}
		},
		"v not required": func(m fstest.MapFS) {
			m["pageview.v3.json"] = &fstest.MapFile{Data: []byte(strings.Replace(string(v3), `"type", "v",`, `"type",`, 1))}
		},
		"unknown keyword": func(m fstest.MapFS) {
			m["pageview.v3.json"] = &fstest.MapFile{Data: []byte(strings.Replace(string(v3), `"maxLength": 8192`, `"maxLength": 8192, "format": "uri"`, 1))}
		},
	} {
		t.Run(name, func(t *testing.T) {
			m := fstest.MapFS{}
			for k, v := range base {
				m[k] = v
			}
			mutate(m)
			if _, err := newRegistry(m); err == nil {
				t.Fatal("registry accepted a broken schema set")
			} else {
				t.Log(err)
			}
		})
	}
}
