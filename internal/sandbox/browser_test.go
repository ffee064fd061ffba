package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/trestle-bridge/trestle/connectors/twilio/twiliosim"
	"github.com/trestle-bridge/trestle/internal/rig"
)

// chromiumPath is where Debian's chromium package puts the browser; CI
// installs it.
const chromiumPath = "/usr/bin/chromium"

func TestMain(m *testing.M) {
	code := m.Run()
	rig.CleanupBinary() // the bridge binary built by Start
	os.Exit(code)
}

// logWriter sends the sandbox's progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startSandbox starts the real sandbox (Dendrite, the bridge binary, the
// simulator, the page) on free ports in a temporary directory.
func startSandbox(t *testing.T) *Sandbox {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: the sandbox runs Dendrite and the bridge, which -short leaves out")
	}
	// A cold first run builds Dendrite for a few minutes.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	sb, err := Start(ctx, Options{Dir: t.TempDir(), Listen: "127.0.0.1:0", Out: logWriter{t}})
	if err != nil {
		t.Fatalf("starting the sandbox: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log, last lines:\n%s", sb.Env.Bridge.LogTail(40))
		}
		sb.Close()
	})
	return sb
}

// browser is a headless Chromium tab for a test.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string // uncaught exceptions and CSP violations on the page
}

// newBrowser starts headless Chromium with a fresh profile, or skips the test
// when it is not installed. Without the background-networking flags,
// Chromium's own connections attempts get refused on locked-down machines
// and slow everything down.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("skipping: headless Chromium is not installed at %s (apt-get install chromium): %v", chromiumPath, err)
	}
	if testing.Short() {
		t.Skip("skipping: the browser test runs the whole sandbox, which -short leaves out")
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelCtx()
		cancelAlloc()
	})
	// The first action starts the browser; it lives as long as ctx, so this
	// one has no deadline (see chromedp.Run).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	b := &browser{t: t, ctx: ctx}
	go b.watchConsole()
	return b
}

// watchConsole records what should never happen on the page: uncaught
// JavaScript errors and content the page's security policy blocked.
func (b *browser) watchConsole() {
	for m, err := range chromedp.Console(b.ctx) {
		if err != nil {
			return
		}
		if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
			b.mu.Lock()
			b.problems = append(b.problems, m.String())
			b.mu.Unlock()
		}
	}
}

// do runs steps with a deadline, failing with what the page shows.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\nthe page shows:\n%s", what, err, b.text())
	}
}

// waitFor polls a JavaScript condition on the page until it holds.
func (b *browser) waitFor(what, condition string) {
	b.t.Helper()
	b.do(what, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](condition, chromedp.WithPollingTimeout(time.Minute))(ctx, t)
		return err
	}))
}

// text is what the page shows, for failure messages.
func (b *browser) text() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("page console: %s", p)
	}
}

// TestBrowserATextCrossesBothWays is the newcomer's first five minutes: on
// the phone page, act as a phone, text the Twilio number, answer from the
// page's Matrix pane, and see the answer arrive on the phone, delivered; then
// send a picture.
func TestBrowserATextCrossesBothWays(t *testing.T) {
	b := newBrowser(t)
	sb := startSandbox(t)
	const phone = "+14155550142"

	b.do("load the page",
		chromedp.Navigate(sb.PageURL),
		chromedp.WaitVisible(chromedp.CSS(`#phone-chips button[aria-pressed="true"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#matrix-rooms button[data-kind="management"]`)),
	)
	b.do("act as a phone of one's own",
		chromedp.SetValue(chromedp.CSS("#phone-number"), "+1 (415) 555-0142"),
		chromedp.Click(chromedp.CSS(`#phone-pick button`)),
		chromedp.WaitVisible(chromedp.CSS(`#phone-chips button[data-phone="`+phone+`"][aria-pressed="true"]`)),
	)

	b.do("text the Twilio number",
		chromedp.SendKeys(chromedp.CSS("#phone-text"), "Hello from the phone"),
		chromedp.Click(chromedp.CSS("#phone-send")),
	)
	b.waitFor("the phone shows the text taken by the bridge",
		`[...document.querySelectorAll('#phone-log .msg.from-phone')].some(m =>
			m.textContent.includes('Hello from the phone') && m.textContent.includes('HTTP 200'))`)
	b.waitFor("the Matrix pane opens the new portal with the text",
		`document.querySelector('#matrix-rooms button[aria-current="true"][data-kind="portal"]') !== null &&
		 [...document.querySelectorAll('#matrix-log .msg:not(.mine)')].some(m => m.textContent.includes('Hello from the phone'))`)

	b.do("answer from Matrix",
		chromedp.SendKeys(chromedp.CSS("#matrix-text"), "Hi phone, Matrix here"),
		chromedp.Click(chromedp.CSS("#matrix-send")),
	)
	b.waitFor("the phone shows the answer, delivered",
		`[...document.querySelectorAll('#phone-log .msg.to-phone[data-status="delivered"]')].some(m =>
			m.textContent.includes('Hi phone, Matrix here'))`)
	b.waitFor("the Matrix pane shows the bridge's delivery report",
		`[...document.querySelectorAll('#matrix-log .msg.mine[data-status="delivered"]')].some(m =>
			m.textContent.includes('Hi phone, Matrix here'))`)
	// The page shows what Twilio really got.
	var found bool
	for _, m := range sb.Env.Sim.Outbound() {
		found = found || (m.Body == "Hi phone, Matrix here" && m.To == phone && m.From == sb.TwilioNumber && m.Status == twiliosim.StatusDelivered)
	}
	if !found {
		t.Errorf("the simulator has no delivered answer to %s: %+v", phone, sb.Env.Sim.Outbound())
	}

	picture := filepath.Join(t.TempDir(), "dot.png")
	if err := os.WriteFile(picture, pngBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	b.do("send a picture from the phone",
		chromedp.SetUploadFiles(chromedp.CSS("#phone-file"), []string{picture}),
		chromedp.WaitVisible(chromedp.CSS("#phone-attachment")),
		chromedp.Click(chromedp.CSS("#phone-send")),
	)
	b.waitFor("the picture shows on both sides",
		`[...document.querySelectorAll('#phone-log .msg.from-phone img, #matrix-log .msg:not(.mine) img')]
			.filter(img => img.complete && img.naturalWidth > 0).length >= 2`)
	b.checkConsole()
}

// TestBrowserAGroupTextCrossesBothWays: on the phone page, a phone texts a
// group with the Twilio number and another phone; the Matrix pane opens the
// group's room, and an answer from it reaches the phone, in the group.
func TestBrowserAGroupTextCrossesBothWays(t *testing.T) {
	b := newBrowser(t)
	sb := startSandbox(t)

	b.do("load the page",
		chromedp.Navigate(sb.PageURL),
		chromedp.WaitVisible(chromedp.CSS(`#phone-chips button[aria-pressed="true"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#matrix-rooms button[data-kind="management"]`)),
	)
	b.do("text a group from the phone",
		chromedp.SendKeys(chromedp.CSS("#phone-group"), "+1 415 555 0177"),
		chromedp.SendKeys(chromedp.CSS("#phone-text"), "Hello group"),
		chromedp.Click(chromedp.CSS("#phone-send")),
	)
	b.waitFor("the phone shows the group text taken by the bridge",
		`[...document.querySelectorAll('#phone-log .msg.from-phone')].some(m =>
			m.textContent.includes('Hello group') && m.textContent.includes('Group with') && m.textContent.includes('HTTP 200'))`)
	b.waitFor("the Matrix pane opens the group's room with the text",
		`document.querySelector('#matrix-rooms button[aria-current="true"][data-kind="group"]') !== null &&
		 [...document.querySelectorAll('#matrix-log .msg:not(.mine)')].some(m => m.textContent.includes('Hello group'))`)
	b.do("answer the group from Matrix",
		chromedp.SendKeys(chromedp.CSS("#matrix-text"), "Hi both"),
		chromedp.Click(chromedp.CSS("#matrix-send")),
	)
	b.waitFor("the phone shows the answer in the group, delivered",
		`[...document.querySelectorAll('#phone-log .msg.to-phone[data-status="delivered"]')].some(m =>
			m.textContent.includes('Hi both') && m.textContent.includes('Group with'))`)
	b.checkConsole()
}
