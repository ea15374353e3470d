package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/campusidp/campusidp/internal/testenv"
)

// chromiumPath is Debian's chromium, which scripts/test.sh installs with apt.
// A variable only so the message for a missing browser can be tested.
var chromiumPath = "/usr/bin/chromium"

const (
	installHint = "run scripts/test.sh, which installs Debian's chromium with apt-get (never a downloaded browser)"

	// actionTimeout bounds one browser step, so a page that never loads
	// fails its test instead of hanging the run.
	actionTimeout = 20 * time.Second

	desktopWidth, desktopHeight = 1280, 800
	phoneWidth, phoneHeight     = 375, 812
)

var (
	// browser is the one chromium process all tests share; each test gets a
	// tab in a browser context of its own (cookies, storage, cache).
	browser context.Context
	// browserErr is why there is no browser; every browser test fails with it.
	browserErr error
	// shotDir receives the screenshots.
	shotDir string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, cleanup, err := screenshotDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer cleanup()
	shotDir = dir

	ctx, stop, err := startBrowser()
	if err != nil {
		browserErr = err
	} else {
		browser = ctx
		defer stop()
	}
	return m.Run()
}

// screenshotDir is $IDP_SCREENSHOTS (a relative path counts from the module
// root, so IDP_SCREENSHOTS=docs/screenshots means what it says), or a
// temporary directory removed after the run.
func screenshotDir() (string, func(), error) {
	if d := os.Getenv("IDP_SCREENSHOTS"); d != "" {
		if !filepath.IsAbs(d) {
			d = filepath.Join("..", d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", nil, err
		}
		return d, func() {}, nil
	}
	d, err := os.MkdirTemp("", "idp-screenshots-")
	if err != nil {
		return "", nil, err
	}
	return d, func() { _ = os.RemoveAll(d) }, nil
}

// startBrowser starts headless chromium with a fresh profile directory for
// this run and waits until it answers.
func startBrowser() (context.Context, func(), error) {
	if _, err := os.Stat(chromiumPath); err != nil {
		return nil, nil, fmt.Errorf("e2e: browser %s not found (%v): %s", chromiumPath, err, installHint)
	}
	profile, err := os.MkdirTemp("", "idp-e2e-chromium-")
	if err != nil {
		return nil, nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(desktopWidth, desktopHeight),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		// Pages are Japanese first; the browser's own language must not matter.
		chromedp.Flag("lang", "ja"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	stop := func() {
		cancelBrowser()
		cancelAlloc()
		_ = os.RemoveAll(profile)
	}
	if err := chromedp.Do(bctx); err != nil {
		stop()
		return nil, nil, fmt.Errorf("e2e: starting %s: %w (%s)", chromiumPath, err, installHint)
	}
	return bctx, stop, nil
}

// tab is one test's browser tab, in a browser context of its own, with the
// console of every page it shows collected for the quality checks.
type tab struct {
	t   *testing.T
	env *testenv.Env
	ctx context.Context

	name    string        // prefix of the screenshot files
	shots   *atomic.Int32 // screens photographed in this test, by all its tabs
	noShots bool          // for made-up pages that are no screens of the IdP

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
	checked  int // messages already judged by checkConsole

	// The document on screen: where it came from and its HTTP status.
	docURL    string
	docStatus int64
}

// requireBrowser fails the test at once, with the hint to run the test
// script, when there is no browser: browser tests never skip silently.
func requireBrowser(t *testing.T) {
	t.Helper()
	if browserErr != nil {
		t.Fatal(browserErr)
	}
}

// newTab opens a tab for the test (see requireBrowser).
func newTab(t *testing.T, env *testenv.Env) *tab {
	t.Helper()
	requireBrowser(t)
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	counter, _ := shotCounters.LoadOrStore(t.Name(), new(atomic.Int32))
	tb := &tab{t: t, env: env, ctx: ctx, name: screenshotPrefix(t.Name()), shots: counter.(*atomic.Int32)}
	// Subscribe before the first page so no message is lost.
	console := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range console {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.messages = append(tb.messages, m)
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		// Judge what arrived after the last page check, then close the tab.
		if !t.Failed() {
			for _, p := range tb.consoleProblems() {
				t.Errorf("after the last page: %s", p)
			}
		}
		cancel()
		<-done
	})
	tb.do(chromedp.EmulateViewport(desktopWidth, desktopHeight))
	return tb
}

// shotCounters numbers the screens of each test across its tabs, so the
// files sort in the order the test saw them.
var shotCounters sync.Map

// randomString returns a fresh random token (states, nonces).
func randomString() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var unsafeFileChars = regexp.MustCompile(`[^a-z0-9]+`)

func screenshotPrefix(testName string) string {
	n := strings.TrimPrefix(testName, "Test")
	return strings.Trim(unsafeFileChars.ReplaceAllString(strings.ToLower(n), "-"), "-")
}

// do runs browser steps with a timeout, failing the test on error.
func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.t.Fatalf("browser: %v (on %s)", err, tb.docURL)
	}
}

// eval evaluates a JavaScript expression in the page (DevTools evaluation
// is not subject to the page's CSP; the page itself runs no script).
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := tryEval[T](tb, expr)
	if err != nil {
		tb.t.Fatalf("browser: evaluating %.60q: %v", expr, err)
	}
	return v
}

// tryEval is eval for polling: an evaluation that meets a navigation in
// progress (a page that posts itself on load) fails, and the caller looks
// again.
func tryEval[T any](tb *tab, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// navigate runs steps that load a new document (a click, a key press that
// submits a form) and records the document's URL and status.
func (tb *tab) navigate(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		tb.t.Fatalf("browser: %v (from %s)", err, tb.docURL)
	}
	if resp == nil {
		tb.t.Fatalf("browser: no new page loaded (still on %s)", tb.docURL)
	}
	tb.docURL, tb.docStatus = resp.URL, resp.Status
}

// open loads a path of the IdP.
func (tb *tab) open(path string) {
	tb.t.Helper()
	tb.navigate(chromedp.Navigate(tb.env.URL(path)))
}

// click clicks the element and waits for the page it leads to.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.navigate(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// clickText clicks the link or button whose text contains text.
func (tb *tab) clickText(text string) {
	tb.t.Helper()
	tb.navigate(chromedp.Click(chromedp.Search(
		fmt.Sprintf(`//a[contains(normalize-space(.), %[1]q)] | //button[contains(normalize-space(.), %[1]q)]`, text)),
		chromedp.NodeVisible))
}

// fill types into the input with the id, as a user would. It empties the
// field through its value property, not chromedp.Clear: Clear rewrites the
// value attribute, and chromedp's handler of that DOM event races with
// SendKeys reading the node's attributes (a data race inside chromedp).
func (tb *tab) fill(id, text string) {
	tb.t.Helper()
	if !eval[bool](tb, fmt.Sprintf(`(() => { const e = document.getElementById(%q); if (!e) return false; e.value = ""; return true })()`, id)) {
		tb.t.Fatalf("no input #%s on %s", id, tb.docURL)
	}
	tb.do(chromedp.SendKeys(chromedp.ID(id), text))
}

// check ticks a checkbox by clicking it.
func (tb *tab) check(id string) {
	tb.t.Helper()
	tb.do(chromedp.Click(chromedp.ID(id), chromedp.NodeVisible))
	if !eval[bool](tb, fmt.Sprintf(`document.getElementById(%q).checked`, id)) {
		tb.t.Fatalf("checkbox #%s is not ticked after a click", id)
	}
}

// openMenu clicks "☰" in the upper right corner.
func (tb *tab) openMenu() {
	tb.t.Helper()
	if !eval[bool](tb, `!!document.querySelector('details.menu > summary')`) {
		tb.t.Fatalf("no ☰ menu on %s", tb.docURL)
	}
	tb.do(chromedp.Click(chromedp.CSS("details.menu > summary"), chromedp.NodeVisible),
		chromedp.WaitVisible(chromedp.CSS("details.menu nav")))
}

// waitForURL waits until the tab shows a URL starting with prefix (after a
// page that moves on by itself, such as the IdP's continue page).
func (tb *tab) waitForURL(prefix string) {
	tb.t.Helper()
	deadline := time.Now().Add(actionTimeout)
	for time.Now().Before(deadline) {
		loc, err := tryEval[string](tb, `location.href`)
		if err == nil && strings.HasPrefix(loc, prefix) {
			if state, err := tryEval[string](tb, `document.readyState`); err == nil && state == "complete" {
				tb.docURL = loc
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.t.Fatalf("the browser did not reach %s; it is at %s", prefix, tb.location())
}

// text returns the visible text of the page's main part.
func (tb *tab) text() string {
	tb.t.Helper()
	return eval[string](tb, `document.body.innerText`)
}

// location returns the URL on screen.
func (tb *tab) location() string {
	tb.t.Helper()
	return eval[string](tb, `location.href`)
}

// path returns the path of the URL on screen.
func (tb *tab) path() string {
	tb.t.Helper()
	return eval[string](tb, `location.pathname`)
}

// mustSee fails unless the page shows every snippet.
func (tb *tab) mustSee(snippets ...string) {
	tb.t.Helper()
	body := tb.text()
	for _, s := range snippets {
		if !strings.Contains(body, s) {
			tb.t.Fatalf("page %s does not show %q; it shows:\n%s", tb.docURL, s, body)
		}
	}
}

// page checks the screen the test arrived at and photographs it; every
// problem pageProblems finds fails the test.
func (tb *tab) page(step string, wantStatus int) {
	tb.t.Helper()
	for _, p := range tb.pageProblems(step, wantStatus) {
		tb.t.Errorf("%s (%s): %s", step, tb.docURL, p)
	}
}

// pageProblems checks the page on screen: its HTTP status, the page rules
// (qualityScript), the console since the last check, and the width at 375
// px; it writes a desktop and a phone screenshot named after step.
func (tb *tab) pageProblems(step string, wantStatus int) []string {
	tb.t.Helper()
	var problems []string
	if tb.docStatus != int64(wantStatus) {
		problems = append(problems, fmt.Sprintf("HTTP status %d, want %d", tb.docStatus, wantStatus))
	}
	problems = append(problems, qualityProblems(tb)...)
	problems = append(problems, tb.consoleProblems()...)

	base := fmt.Sprintf("%s-%02d-%s", tb.name, tb.shots.Add(1), screenshotPrefix(step))
	tb.screenshot(base + "-desktop.png")
	tb.do(chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile))
	if w := eval[int](tb, `document.documentElement.scrollWidth`); w > phoneWidth {
		problems = append(problems, fmt.Sprintf("%d px wide on a %d px phone screen (horizontal scrolling)", w, phoneWidth))
	}
	tb.screenshot(base + "-phone.png")
	tb.do(chromedp.EmulateViewport(desktopWidth, desktopHeight))
	return problems
}

func (tb *tab) screenshot(file string) {
	tb.t.Helper()
	if tb.noShots {
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", file, err)
	}
	if err := os.WriteFile(filepath.Join(shotDir, file), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// autofocusRace is Chromium's note that a page's autofocus was skipped
// because the test had already focused a field (it types as soon as the
// field exists, sometimes before the autofocus task runs). It says nothing
// about the page, and comes and goes with the machine's load.
func autofocusRace(m chromedp.ConsoleMessage) bool {
	return m.Type == "info" && m.Source == "rendering" &&
		strings.HasPrefix(m.Text, "Autofocus processing was blocked because a document already has a focused element")
}

// consoleProblems returns the console messages since the last check,
// except the browser's note that the document itself answered with its
// (separately checked) error status.
func (tb *tab) consoleProblems() []string {
	tb.t.Helper()
	// A round trip to the page first: messages sent before it are queued
	// by the time the answer comes.
	eval[int](tb, `1`)
	tb.mu.Lock()
	fresh := append([]chromedp.ConsoleMessage(nil), tb.messages[tb.checked:]...)
	tb.checked = len(tb.messages)
	tb.mu.Unlock()
	var problems []string
	for _, m := range fresh {
		if tb.documentStatusNote(m) || autofocusRace(m) {
			continue
		}
		problems = append(problems, fmt.Sprintf("console %s (%s) at %s: %s", m.Type, m.Source, m.URL, m.Text))
	}
	return problems
}

func (tb *tab) documentStatusNote(m chromedp.ConsoleMessage) bool {
	return m.Source == "network" && m.URL == tb.docURL && tb.docStatus >= 400 &&
		strings.Contains(m.Text, fmt.Sprintf("status of %d", tb.docStatus))
}
