package collector

import (
	"testing"

	"github.com/rungdev/rung/internal/harness"
)

// BenchmarkIsBot compares judging a browser's user agent afresh with looking it up in
// the cache of recent verdicts, as /collect does once per request.
func BenchmarkIsBot(b *testing.B) {
	ua := []byte(harness.BrowserUA)
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if isBot(ua) {
				b.Fatal("a browser taken for a bot")
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		var c botCache
		b.ReportAllocs()
		for b.Loop() {
			if c.isBot(ua) {
				b.Fatal("a browser taken for a bot")
			}
		}
	})
}
