package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// webBrowserPath finds Chromium: $CHROME_PATH, else the usual names. Without one the
// test skips, unless CI or FABRIC_REQUIRE_BROWSER=1 is set: there it fails.
func webBrowserPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROME_PATH"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CHROME_PATH=%s: %v", p, err)
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" || os.Getenv("FABRIC_REQUIRE_BROWSER") == "1" {
		t.Fatal("no Chromium found (CHROME_PATH, /usr/bin/chromium, chromium, chromium-browser, google-chrome); `make browser` installs it")
	}
	t.Skip("no Chromium found; `make browser` installs it (set FABRIC_REQUIRE_BROWSER=1 to fail instead)")
	return ""
}

// webArtifactsDir is where the screenshots go: $FABRIC_ARTIFACTS, else
// tests/artifacts/browser under the repository root.
func webArtifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FABRIC_ARTIFACTS")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		root := wd
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(root)
			if parent == root {
				t.Fatalf("no go.mod above %s", wd)
			}
			root = parent
		}
		dir = filepath.Join(root, "tests", "artifacts", "browser")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestWebBrowser signs in, opens the proposal from the pending list, checks what an
// approver sees, fails with a wrong code, approves with the right one, in headless
// Chromium, with a screenshot at each step.
func TestWebBrowser(t *testing.T) {
	exe := webBrowserPath(t)
	shots := webArtifactsDir(t)

	f := &webFake{items: []*Item{webItem()}}
	page := New(f, Options{Now: func() time.Time { return webNow }})
	mux := http.NewServeMux()
	page.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base := srv.URL + webBase

	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, 15*time.Second)
		defer scancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, 10*time.Second)
		defer scancel()
		s, err := chromedp.Run(sctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	shot := func(name string) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, 15*time.Second)
		defer scancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if len(png) < 1000 {
			t.Fatalf("screenshot %s: only %d bytes", name, len(png))
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	location := func() string {
		t.Helper()
		loc, err := chromedp.Run(bctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}

	// The first Run starts the browser: no timeout of its own (the parent's caps it).
	if err := chromedp.Do(bctx, chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("start Chromium and open the page: %v", err)
	}
	step("sign-in form", chromedp.WaitVisible(`#token`))
	if h1 := text("h1"); h1 != "Sign in" {
		t.Errorf("sign-in h1 %q", h1)
	}
	shot("01-signin")

	// A wrong token: the form again with the error.
	step("wrong token", chromedp.SendKeys(`#token`, "not-a-token"), chromedp.Click(`form.card button[type=submit]`),
		chromedp.WaitVisible(`p.msg.err`))
	if msg := text(`p[role=alert]`); !strings.Contains(msg, "token signature is invalid") {
		t.Errorf("wrong-token alert %q", msg)
	}

	step("sign in", chromedp.SendKeys(`#token`, webToken), chromedp.Click(`form.card button[type=submit]`),
		chromedp.WaitVisible(`table caption`))
	if loc := location(); loc != base+"/pending" {
		t.Errorf("after sign-in at %s", loc)
	}
	pending := text("main")
	for _, want := range []string{"Pending approvals", webItemID, "HIGH", "scale", `db\u202Eevil`, "eu-west-1, us-east-1", "1 approved"} {
		if !strings.Contains(pending, want) {
			t.Errorf("pending list lacks %q:\n%s", want, pending)
		}
	}
	shot("02-pending")

	step("open the proposal", chromedp.Click(`a[href="/ui/p/`+webItemID+`"]`), chromedp.WaitVisible(`#totp`))
	if loc := location(); loc != base+"/p/"+webItemID {
		t.Errorf("detail at %s", loc)
	}
	diff := text("table.diff")
	for _, want := range []string{"spec.replicas", "3", "7", "spec.note", "<script>alert(1)</script>", "(absent)"} {
		if !strings.Contains(diff, want) {
			t.Errorf("diff table lacks %q:\n%s", want, diff)
		}
	}
	detail := text("main")
	if !strings.Contains(detail, `db\u202Eevil`) {
		t.Errorf("the detail page does not show \\u202E visibly:\n%s", detail)
	}
	if strings.Contains(detail, webRLO) {
		t.Error("the detail page's text holds a raw U+202E")
	}
	for _, want := range []string{"1 more of group sre", "carol", "82%", "0.61 (HIGH)", `"replicas": 7`, "impact HIGH in production needs two approvers"} {
		if !strings.Contains(detail, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	step("the escape is visible", chromedp.WaitVisible(`span.ctl`))
	shot("03-detail")

	// The same page on a phone.
	step("phone viewport", chromedp.EmulateViewport(390, 844), chromedp.WaitVisible(`#totp`))
	shot("04-detail-phone")
	step("desktop viewport", chromedp.EmulateViewport(1280, 900))

	// A wrong code: the error, the proposal still pending.
	step("wrong code", chromedp.Click(`#d-approve`), chromedp.SendKeys(`#totp`, "000000"),
		chromedp.Click(`form.card button[type=submit]`), chromedp.WaitVisible(`p.msg.err`))
	if msg := text(`p[role=alert]`); !strings.Contains(msg, "wrong or expired TOTP code") {
		t.Errorf("wrong-code alert %q", msg)
	}
	if st := f.status(0); st != "PENDING_APPROVAL" {
		t.Errorf("status after a wrong code %q", st)
	}
	shot("05-wrong-code")

	// The right code: approved.
	step("approve", chromedp.Click(`#d-approve`), chromedp.SendKeys(`#reason`, "capacity for the sale"),
		chromedp.SendKeys(`#totp`, webGoodTOTP), chromedp.Click(`form.card button[type=submit]`),
		chromedp.WaitVisible(`p.msg.ok`))
	if msg := text(`p[role=status]`); !strings.Contains(msg, "The proposal is now APPROVED.") {
		t.Errorf("status message %q", msg)
	}
	if loc := location(); loc != base+"/p/"+webItemID+"?done=APPROVED" {
		t.Errorf("after the vote at %s", loc)
	}
	after := text("main")
	if !strings.Contains(after, "carol, alice") || !strings.Contains(after, "You have voted on this proposal.") {
		t.Errorf("after the vote:\n%s", after)
	}
	if _, n := f.calls(); n != 2 || !f.lastDecision().Approve || f.lastDecision().TOTP != webGoodTOTP || f.lastDecision().Reason != "capacity for the sale" {
		t.Errorf("Decide calls %d, last %+v", n, f.lastDecision())
	}
	shot("06-approved")

	// From a plain HTTP client, with the session but without the CSRF token: 403.
	form := url.Values{"decision": {"deny"}, "totp": {webGoodTOTP}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/p/"+webItemID+"/decide", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: SessionCookie, Value: webToken})
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without the CSRF token: %d, want 403", resp.StatusCode)
	}
	if _, n := f.calls(); n != 2 {
		t.Errorf("Decide called without a CSRF token (%d calls)", n)
	}
	t.Logf("screenshots in %s", shots)
}
