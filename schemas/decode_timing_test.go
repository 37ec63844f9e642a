package schemas

import (
	"strings"
	"testing"
)

func benchBodies() map[string]string {
	single := `{"type":"pageview","site":"example.com","anonymous_id":"a1b2c3d4e5f6a7b8","event_id":"0d6f7a3e-5a0b-4c1e-9c43-1f2e3d4c5b6a",` +
		`"url":"https://example.com/pricing?utm_source=google&utm_medium=cpc&utm_campaign=spring","referrer":"https://www.google.com/","props":{"plan":"pro"}}`
	return map[string]string{
		"single":  single,
		"batch50": "[" + strings.TrimSuffix(strings.Repeat(single+",", 50), ",") + "]",
	}
}

// BenchmarkDecode measures the fast path: scan, check against the compiled rules, fill.
func BenchmarkDecode(b *testing.B) {
	r := newTestRegistry(b)
	for name, body := range benchBodies() {
		b.Run(name, func(b *testing.B) {
			var batch Batch
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				batch.Reset()
				if err := r.Decode(body, Meta{}, 100, &batch); err != nil || len(batch.Rejected) > 0 {
					b.Fatal(err, batch.Rejected)
				}
			}
		})
	}
}

// BenchmarkOracle is the baseline: encoding/json into map[string]any plus jsonschema/v5,
// what every signal would cost without the fast path.
func BenchmarkOracle(b *testing.B) {
	r := newTestRegistry(b)
	body := []byte(benchBodies()["single"])
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := r.Validate(signalSchema, body); err != nil {
			b.Fatal(err)
		}
	}
}
