package bench

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/rungdev/rung/schemas"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; if the model changed on purpose, rerun with -update and review the diff", path)
	}
}

// summary is a population's aggregate truth, as the golden file records it.
type summary struct {
	Visitors, Sessions, Signals, MaxJourney int64
	ByType                                  map[string]int64
	Variants                                []VariantDrawn
	Outside                                 [2]int64 // visitors, converters outside the experiment
	Landing                                 map[string]int64
}

func summarize(m *Model, n int64) summary {
	s := summary{Visitors: n, ByType: map[string]int64{}, Landing: map[string]int64{}}
	for _, v := range m.Experiment.Variants {
		s.Variants = append(s.Variants, VariantDrawn{Name: v.Name})
	}
	pages := Pages()
	for v := range n {
		j := m.Journey(v)
		s.Sessions += int64(j.Sessions)
		s.Signals += int64(len(j.Signals))
		s.MaxJourney = max(s.MaxJourney, int64(len(j.Signals)))
		for _, g := range j.Signals {
			s.ByType[g.Type]++
		}
		s.Landing[pages[j.Signals[0].Page]]++
		c := int64(0)
		if j.Converts {
			c = 1
		}
		if j.Variant >= 0 {
			s.Variants[j.Variant].Visitors++
			s.Variants[j.Variant].Converters += c
		} else {
			s.Outside[0]++
			s.Outside[1] += c
		}
	}
	return s
}

func TestWorkloadGolden(t *testing.T) {
	m := DefaultModel(42, "golden1")
	var b bytes.Buffer
	for v := range int64(12) {
		j := m.Journey(v)
		fmt.Fprintf(&b, "# visitor %d: %d sessions, variant %d, converts %v\n", v, j.Sessions, j.Variant, j.Converts)
		for i := range j.Signals {
			fmt.Fprintf(&b, "%8dms %s\n", j.Signals[i].AtMs, m.AppendJSON(nil, &j.Signals[i]))
		}
	}
	sum, _ := json.MarshalIndent(summarize(&m, 20_000), "", "  ")
	exp, _ := json.MarshalIndent(m.Expect(), "", "  ")
	fmt.Fprintf(&b, "# 20,000 visitors\n%s\n# expectation\n%s\n", sum, exp)
	golden(t, "workload_seed42.golden", b.Bytes())

	// The same seed makes the same journeys; another seed, others.
	again := DefaultModel(42, "golden1")
	other := DefaultModel(43, "golden1")
	same, differ := true, false
	for v := range int64(200) {
		a, b, c := m.Journey(v), again.Journey(v), other.Journey(v)
		same = same && fmt.Sprint(a) == fmt.Sprint(b)
		differ = differ || fmt.Sprint(a) != fmt.Sprint(c)
	}
	if !same || !differ {
		t.Errorf("same seed same journeys: %v; other seed other journeys: %v", same, differ)
	}
}

// TestWorkloadMatchesModel checks that the drawn population agrees with the model's
// expectation within sampling error, and that every journey respects the invariants
// the load generator and the truth rely on.
func TestWorkloadMatchesModel(t *testing.T) {
	m := DefaultModel(7, "model01")
	const n = 100_000
	s := summarize(&m, n)
	e := m.Expect()
	within := func(what string, got, want float64, count int64) {
		t.Helper()
		se := math.Sqrt(want * (1 - want) / float64(count))
		if math.Abs(got-want) > 4*se {
			t.Errorf("%s: %.4f, model %.4f (±%.4f at 4 standard errors)", what, got, want, 4*se)
		}
	}
	var exposed int64
	for i, v := range s.Variants {
		exposed += v.Visitors
		within("CVR of "+v.Name, float64(v.Converters)/float64(v.Visitors), e.Variants[i].CVR, v.Visitors)
	}
	within("experiment share", float64(exposed)/n, m.Experiment.Share, n)
	within("CVR outside", float64(s.Outside[1])/float64(s.Outside[0]), m.BaseCVR, s.Outside[0])
	for path, share := range e.LandingShare {
		within("landing share of "+path, float64(s.Landing[path])/n, share, n)
	}
	if per := float64(s.Sessions) / n; math.Abs(per-e.SessionsPerVisitor) > 0.01 {
		t.Errorf("sessions per visitor %.3f, model %.3f", per, e.SessionsPerVisitor)
	}
	if s.MaxJourney > MaxJourney {
		t.Errorf("a journey has %d signals, more than MaxJourney %d", s.MaxJourney, MaxJourney)
	}
	for v := range int64(5000) {
		j := m.Journey(v)
		first := j.Signals[0]
		if first.Type != "pageview" || !first.Landing || first.Session != 0 {
			t.Fatalf("visitor %d does not start with a landing pageview: %+v", v, first)
		}
		exposedAt, convertedAt := -1, -1
		for i, g := range j.Signals {
			if g.Seq != i || (i > 0 && g.AtMs < j.Signals[i-1].AtMs) {
				t.Fatalf("visitor %d: signal %d out of order", v, i)
			}
			if i > 0 && g.Session > j.Signals[i-1].Session && g.AtMs-j.Signals[i-1].AtMs < 30*60_000 {
				t.Fatalf("visitor %d: session %d starts %dms after the last signal, under 30 minutes", v, g.Session, g.AtMs-j.Signals[i-1].AtMs)
			}
			switch {
			case g.Type == "exposure":
				exposedAt = i
			case g.Type == "event" && g.Name == Goal:
				if convertedAt >= 0 {
					t.Fatalf("visitor %d converts twice", v)
				}
				convertedAt = i
			}
		}
		if (convertedAt >= 0) != j.Converts || (exposedAt >= 0) != (j.Variant >= 0) || (exposedAt >= 0 && convertedAt >= 0 && convertedAt < exposedAt) {
			t.Fatalf("visitor %d: converts %v at %d, variant %d exposed at %d", v, j.Converts, convertedAt, j.Variant, exposedAt)
		}
	}
}

// TestSignalsValid runs every signal the model makes through rung's own decoder: the
// workload speaks the contract, so a rejection in a run is the server's doing.
func TestSignalsValid(t *testing.T) {
	reg, err := schemas.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	m := DefaultModel(3, "valid01")
	for v := range int64(300) {
		j := m.Journey(v)
		body := []byte{'['}
		for i := range j.Signals {
			if i > 0 {
				body = append(body, ',')
			}
			body = m.AppendJSON(body, &j.Signals[i])
		}
		body = append(body, ']')
		var b schemas.Batch
		if err := reg.Decode(string(body), schemas.Meta{ReceivedAt: 1}, 1000, &b); err != nil {
			t.Fatalf("visitor %d: %v\n%s", v, err, body)
		}
		if len(b.Rejected) > 0 || len(b.Signals) != len(j.Signals) {
			t.Fatalf("visitor %d: %d accepted, rejected %+v\n%s", v, len(b.Signals), b.Rejected, body)
		}
		for i, g := range b.Signals {
			if id := m.EventID(v, i); g.EventID != id || g.AnonymousID != m.AnonymousID(v) {
				t.Fatalf("visitor %d signal %d: ids %q %q, want %q %q", v, i, g.AnonymousID, g.EventID, m.AnonymousID(v), id)
			}
			want := j.Signals[i]
			if want.Landing && want.Campaign != 0 && campaigns[want.Campaign].source != "" && g.UTMSource != campaigns[want.Campaign].source {
				t.Fatalf("visitor %d signal %d: utm_source %q, want %q", v, i, g.UTMSource, campaigns[want.Campaign].source)
			}
			if g.Path != Pages()[want.Page] {
				t.Fatalf("visitor %d signal %d: path %q, want %q", v, i, g.Path, Pages()[want.Page])
			}
		}
	}
}

func TestEventIDRoundTrip(t *testing.T) {
	m := DefaultModel(1, "abcd1234")
	for _, c := range []struct {
		v   int64
		seq int
	}{{0, 0}, {1, 63}, {35, 10}, {1 << 40, 5}} {
		v, seq, ok := m.ParseEventID(m.EventID(c.v, c.seq))
		if !ok || v != c.v || seq != c.seq {
			t.Errorf("ParseEventID(EventID(%d, %d)) = %d, %d, %v", c.v, c.seq, v, seq, ok)
		}
	}
	for _, bad := range []string{"", "abcd1234-v000001", "abcd1234-v000001-1", "other123-v000001-01",
		"abcd1234-v1-01", "abcd1234-v00000!-01", "abcd1234-v000001-1z", "abcd1234-v0000001-01"} {
		if _, _, ok := m.ParseEventID(bad); ok {
			t.Errorf("ParseEventID(%q) accepted an id the model does not make", bad)
		}
	}
}

func TestModelValidate(t *testing.T) {
	ok := DefaultModel(1, "good1")
	if err := ok.Validate(); err != nil {
		t.Fatalf("default model: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(m *Model)
	}{
		{"short run tag", func(m *Model) { m.Run = "ab" }},
		{"run tag with capitals", func(m *Model) { m.Run = "ABCDE" }},
		{"site with a slash", func(m *Model) { m.Site = "a/b" }},
		{"one variant", func(m *Model) { m.Experiment.Variants = m.Experiment.Variants[:1] }},
		{"cvr above 1", func(m *Model) { m.Experiment.Variants[1].CVR = 1.5 }},
		{"zero weight", func(m *Model) { m.Experiment.Variants[0].Weight = 0 }},
		{"duplicate variant", func(m *Model) { m.Experiment.Variants[1].Name = "control" }},
		{"return rate NaN", func(m *Model) { m.ReturnRate = math.NaN() }},
	} {
		m := DefaultModel(1, "good1")
		m.Experiment.Variants = append([]Variant(nil), m.Experiment.Variants...)
		c.edit(&m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if _, err := ParseVariants("a:1:0.1,b:2"); err == nil {
		t.Error("ParseVariants accepted a variant without a cvr")
	}
	if v, err := ParseVariants("a:1:0.1, b:2:0.2"); err != nil || len(v) != 2 || v[1].Weight != 2 || v[1].CVR != 0.2 {
		t.Errorf("ParseVariants = %+v, %v", v, err)
	}
}
