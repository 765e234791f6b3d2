package testutil

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Browser starts a headless Chromium for the test (Debian's chromium
// package, found through MQIM_CHROMIUM or PATH; scripts/test-browser.sh
// installs it) and returns a chromedp context for it, closed when the test
// ends. Without a browser the test is skipped, unless MQIM_TEST_BROWSER=1
// (set by make test), when it fails.
func Browser(t testing.TB) context.Context {
	t.Helper()
	bin := os.Getenv("MQIM_CHROMIUM")
	if bin == "" {
		for _, name := range []string{"chromium", "chromium-browser"} {
			if p, err := exec.LookPath(name); err == nil {
				bin = p
				break
			}
		}
	}
	if bin == "" {
		if os.Getenv("MQIM_TEST_BROWSER") == "1" {
			t.Fatal("no chromium: set MQIM_CHROMIUM or install Debian's chromium package")
		}
		t.Skip("no chromium installed (scripts/test-browser.sh installs it; make test runs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first run starts the browser, for as long as ctx lives (so no
	// timeout on it; later actions take theirs from BrowserRun).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", bin, err)
	}
	return ctx
}
