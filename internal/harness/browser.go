package harness

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Browser starts headless Chromium with a fresh profile and returns the context of its
// first tab; chromedp.NewContext on it opens more tabs of the same browser. The test's
// cleanup closes the browser. $RUNG_TEST_CHROMIUM names the executable; otherwise it is
// chromium on $PATH, or Debian's /usr/bin/chromium. A missing browser fails the test.
func Browser(t testing.TB) context.Context {
	t.Helper()
	path := os.Getenv("RUNG_TEST_CHROMIUM")
	if path == "" {
		var err error
		if path, err = exec.LookPath("chromium"); err != nil {
			path = "/usr/bin/chromium"
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("headless Chromium is needed (apt-get install chromium, or set RUNG_TEST_CHROMIUM): %v", err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser with this long-lived context: the first action's context owns
	// the browser, so a caller's per-step timeouts must not be the ones that start it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium at %s: %v", path, err)
	}
	return ctx
}
