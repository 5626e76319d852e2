// Package browser starts Debian's chromium, headless, for tests driven by
// chromedp: no browser is downloaded, and one that is absent skips the test
// with how to install it (.ci/run installs it).
package browser

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// Path finds chromium: $MAST_CHROMIUM, else chromium or chromium-browser on PATH.
func Path() (string, bool) {
	if p := os.Getenv("MAST_CHROMIUM"); p != "" {
		return p, true
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
	}
	return "", false
}

// New starts a headless chromium with a window of width x height and
// returns a browser context for chromedp; it is closed at the test's end.
func New(tb testing.TB, width, height int) context.Context {
	tb.Helper()
	path, ok := Path()
	if !ok {
		tb.Skip("needs chromium: apt-get install -y chromium (.ci/run installs it), or set MAST_CHROMIUM")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(width, height),
		chromedp.UserDataDir(tb.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		tb.Fatalf("starting chromium %s: %v", path, err)
	}
	tb.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}
