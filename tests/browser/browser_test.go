// Package browser drives the hil-gateway's approval page (/ui) in headless Chromium
// against a real, all-in-one fabric: a proposer's high-impact proposal waits in
// PENDING_APPROVAL, an approver signs in with a token, reviews it, fails with a wrong
// TOTP code and approves with the right one, and the coordinator records the vote.
package browser

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/store/pgtest"
	"github.com/decision-fabric/fabric/services/hil-gateway/hil/web"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// policy makes every change high impact and asks for one sre; one sre's denial ends it.
const policy = `
version: 1
defaults:
  quorum: majority
  impact_rules:
    - {name: everything, when: "true", impact: high, reason: "every change is high impact here"}
  approval:
    sets:
      - rules:
          - {name: sre, approve: 1, deny: 1, filter: {roles: [approver], groups: [sre]}}
    expires_after: 10m
    reminder_before: 5m
`

// rlo is U+202E RIGHT-TO-LEFT OVERRIDE: "svc‮gnp.exe" renders as "svcexe.png".
const rlo = "\u202E"

// browserPath finds Chromium: $CHROME_PATH, else the usual names. Without one the test
// skips, unless CI or FABRIC_REQUIRE_BROWSER=1 is set: there it fails.
func browserPath(t *testing.T) string {
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

// artifactsDir is where the screenshots go: $FABRIC_ARTIFACTS, else
// tests/artifacts/browser-e2e under the repository root.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FABRIC_ARTIFACTS")
	if dir == "" {
		wd, err := os.Getwd()
		require.NoError(t, err)
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
		dir = filepath.Join(root, "tests", "artifacts", "browser-e2e")
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// proposal is what the test reads of GET /proposals/{id}.
type proposal struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Impact    string `json:"impact"`
	Approvals []struct {
		Approver    string `json:"approver"`
		Decision    string `json:"decision"`
		Reason      string `json:"reason"`
		MFAMethod   string `json:"mfa_method"`
		MFAVerified bool   `json:"mfa_verified"`
		Channel     string `json:"channel"`
	} `json:"approvals"`
}

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestApprovalPageEndToEnd: a real fabric (all-in-one, on SQLite and on Postgres), a
// real browser, the approval page as an approver uses it, checked against the
// coordinator's API. Screenshots of each step go to <artifacts>/<store>/.
func TestApprovalPageEndToEnd(t *testing.T) {
	exe := browserPath(t)
	root := artifactsDir(t)
	for _, st := range []fabrictest.Store{fabrictest.SQLite, fabrictest.Postgres} {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			shots := filepath.Join(root, string(st))
			require.NoError(t, os.MkdirAll(shots, 0o755))
			_ = os.Remove(filepath.Join(shots, "failed.png"))
			approvalPage(t, st, exe, shots)
		})
	}
}

// approvalPage is the scenario on store st, with Chromium exe, screenshots in shots.
func approvalPage(t *testing.T, st fabrictest.Store, exe, shots string) {
	dir := t.TempDir()
	regions, pol := filepath.Join(dir, "regions.yaml"), filepath.Join(dir, "policy.yaml")
	require.NoError(t, os.WriteFile(regions, []byte(fabrictest.InstantRegions), 0o600))
	require.NoError(t, os.WriteFile(pol, []byte(policy), 0o600))
	f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.AllInOne, Store: st,
		Configure: func(c *config.Config) { c.RegionsFile, c.PolicyFile = regions, pol }})

	// The proposer (not the approver: nobody approves their own proposal).
	proposer := f.TokenFor(t, "agent-7", "t1", auth.RoleProposer)
	get := func(id string) proposal {
		t.Helper()
		r := f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+id, proposer, "")
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		var out struct{ Proposal proposal }
		require.NoError(t, json.Unmarshal(r.Body, &out))
		return out.Proposal
	}
	submit := func(target string, replicas int) string {
		t.Helper()
		m, err := json.Marshal(map[string]any{"action": "scale", "target": target, "regions": []string{"eu-west"},
			"parameters": map[string]any{"replicas": replicas}})
		require.NoError(t, err)
		r := f.Do(t, http.MethodPost, fabric.Coordinator, "/proposals", proposer, `{"tenant_id":"t1","manifest":`+string(m)+`}`)
		require.Equal(t, http.StatusOK, r.Status, "the coordinator accepts target %q: %s", target, r.Body)
		var out struct{ Proposal proposal }
		require.NoError(t, json.Unmarshal(r.Body, &out))
		id := out.Proposal.ID
		require.NotEmpty(t, id)
		var p proposal
		require.Eventually(t, func() bool {
			p = get(id)
			return p.Status == "PROPOSAL_STATUS_PENDING_APPROVAL"
		}, 20*time.Second, 25*time.Millisecond, "proposal %s never reached PENDING_APPROVAL (last %s)", id, p.Status)
		require.Equal(t, "high", p.Impact)
		return id
	}
	// The one approved in the browser carries the RLO in its target; the other is for
	// the CSRF check at the end.
	evil := "svc" + rlo + "gnp.exe"
	id := submit(evil, 7)
	other := submit("svc-other", 5)

	// The approver: ana, an sre, enrolled for TOTP.
	ana := f.TokenWithGroups(t, "ana", "t1", []string{"sre"}, auth.RoleApprover)
	r := f.Do(t, http.MethodPost, fabric.HIL, "/mfa/enroll", ana, `{}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var enrolled struct {
		OtpauthURI string `json:"otpauth_uri"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &enrolled))
	key, err := otp.NewKeyFromURL(enrolled.OtpauthURI)
	require.NoError(t, err)
	code := func(at time.Time) string {
		t.Helper()
		c, err := totp.GenerateCodeCustom(key.Secret(), at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		require.NoError(t, err)
		return c
	}

	ui := f.URL(fabric.HIL) + "/ui"
	require.True(t, strings.HasPrefix(ui, "http://127.0.0.1:"), "the page is on plain-http loopback: %s", ui)

	// A plain HTTP client: no redirects followed, so the test sees each response.
	hc := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(method, path string, cookie *http.Cookie, form url.Values) (*http.Response, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(t.Context(), method, ui+path, body)
		require.NoError(t, err)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}

	// Sign-in from the plain client: the session cookie the real server sets.
	resp, _ := send(http.MethodPost, "/login", nil, url.Values{"token": {ana}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, "/ui/pending", resp.Header.Get("Location"))
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == web.SessionCookie {
			session = c
		}
	}
	require.NotNil(t, session, "sign-in sets %s", web.SessionCookie)
	require.True(t, session.HttpOnly, "the session cookie is HttpOnly")
	require.Equal(t, http.SameSiteStrictMode, session.SameSite)
	require.False(t, session.Secure, "plain-http loopback: the cookie cannot be Secure")
	require.Equal(t, "/ui", session.Path)

	// The security headers of the real server's /ui/pending.
	resp, body := send(http.MethodGet, "/pending", session, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	csp := resp.Header.Get("Content-Security-Policy")
	require.Contains(t, csp, "default-src 'none'")
	require.Contains(t, csp, "frame-ancestors 'none'")
	require.Contains(t, csp, "form-action 'self'")
	require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	require.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	require.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
	require.Contains(t, body, id)
	require.Contains(t, body, other)

	// The raw HTML of the detail page, as the server sent it: the RLO escaped.
	resp, body = send(http.MethodGet, "/p/"+id, session, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	require.NotContains(t, body, rlo, "the raw U+202E is never in the page")
	require.Contains(t, body, `svc<span class="ctl">\u202E</span>gnp.exe`)
	// The decide form's CSRF field (the sign-out form in the header has its own).
	csrfField := regexp.MustCompile(`action="/ui/p/[^"]+/decide"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]+)"`)
	m := csrfField.FindStringSubmatch(body)
	require.NotNil(t, m, "the detail page's form has a CSRF field")
	csrfOfID := m[1]

	// The browser.
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
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
			// What the browser shows, for the report: the text and a screenshot.
			dctx, dcancel := context.WithTimeout(bctx, 5*time.Second)
			defer dcancel()
			main, _ := chromedp.Run(dctx, chromedp.Text("body"))
			loc, _ := chromedp.Run(dctx, chromedp.Location())
			if png, err := chromedp.Run(dctx, chromedp.FullScreenshot(90)); err == nil {
				_ = os.WriteFile(filepath.Join(shots, "failed.png"), png, 0o644)
			}
			t.Fatalf("%s: %v\nat %s:\n%s", name, err, loc, main)
		}
	}
	run := func(name string, a chromedp.Action[string]) string {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, 10*time.Second)
		defer scancel()
		s, err := chromedp.Run(sctx, a)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return s
	}
	text := func(sel string) string { t.Helper(); return run("text of "+sel, chromedp.Text(sel)) }
	html := func() string { t.Helper(); return run("page HTML", chromedp.OuterHTML("html")) }
	location := func() string { t.Helper(); return run("location", chromedp.Location()) }
	shot := func(name string) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, 15*time.Second)
		defer scancel()
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if len(png) < 1000 || !strings.HasPrefix(string(png), "\x89PNG") {
			t.Fatalf("screenshot %s: not a PNG (%d bytes)", name, len(png))
		}
		require.NoError(t, os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644))
	}

	// The first Run starts the browser: no timeout of its own (ctx caps it).
	if err := chromedp.Do(bctx, chromedp.Navigate(ui+"/")); err != nil {
		t.Fatalf("start Chromium and open %s/: %v", ui, err)
	}
	step("sign-in form", chromedp.WaitVisible(`#token`))
	require.Equal(t, "Sign in", text("h1"))
	shot("01-signin")

	step("sign in", chromedp.SendKeys(`#token`, ana), chromedp.Click(`form.card button[type=submit]`),
		chromedp.WaitVisible(`table caption`))
	require.Equal(t, ui+"/pending", location())
	// The session cookie is HttpOnly: the page's script (were there any) cannot read it.
	jsCookie := run("document.cookie", chromedp.Evaluate[string](`document.cookie`))
	require.NotContains(t, jsCookie, web.SessionCookie, "the session cookie is visible to script")
	pending := text("main")
	for _, want := range []string{"Pending approvals", "2 proposals waiting", id, other, "high", "scale", `svc\u202Egnp.exe`, "svc-other", "eu-west", "0 approved"} {
		require.Contains(t, pending, want, "the pending list")
	}
	require.NotContains(t, html(), rlo, "the pending list's HTML holds a raw U+202E")
	shot("02-pending")

	step("open the proposal", chromedp.Click(`a[href="/ui/p/`+id+`"]`), chromedp.WaitVisible(`#totp`))
	require.Equal(t, ui+"/p/"+id, location())
	diff := text("table.diff")
	change := regexp.MustCompile(`regions\.eu-west\.replicas\s+(\d+)\s+7`).FindStringSubmatch(diff)
	require.NotNil(t, change, "the diff table shows the replicas change to 7:\n%s", diff)
	require.NotEqual(t, "7", change[1], "the diff's before is the current state")
	detail := text("main")
	for _, want := range []string{"PENDING_APPROVAL", "high", `svc\u202Egnp.exe`, "every change is high impact here", "nobody yet", `needs 1 more approver with role approver and group sre`} {
		require.Contains(t, detail, want, "the detail page")
	}
	require.Regexp(t, `"target":\s+"svc\\u202Egnp.exe"`, detail, "the manifest JSON shows the escape")
	require.Regexp(t, `"replicas":\s+7`, detail, "the manifest JSON")
	require.Regexp(t, `Deadline\n\d{4}-\d\d-\d\d \d\d:\d\d UTC \(in (9|10)m\)`, detail, "the approval deadline (expires_after 10m)")
	require.NotContains(t, detail, rlo, "the detail page's text holds a raw U+202E")
	page := html()
	require.NotContains(t, page, rlo, "the detail page's HTML holds a raw U+202E")
	// The target, in the facts and in the manifest JSON: both escaped, both visible.
	require.GreaterOrEqual(t, strings.Count(page, `<span class="ctl">\u202E</span>`), 2, "the facts and the manifest show the escape")
	step("the escape is visible", chromedp.WaitVisible(`span.ctl`))
	shot("03-detail")

	// The same page on a phone.
	step("phone viewport", chromedp.EmulateViewport(390, 844), chromedp.WaitVisible(`#totp`))
	// The whole diff row fits the phone's width: the approver sees before and after
	// without scrolling sideways.
	fits := run("diff fits", chromedp.Evaluate[string](
		`(() => { const r = document.querySelector('table.diff td.after').getBoundingClientRect();
		   return r.right <= window.innerWidth && r.width > 0 ? "yes" : "no: right " + r.right + " of " + window.innerWidth; })()`))
	require.Equal(t, "yes", fits, "the diff's After column on a 390px phone")
	shot("04-detail-phone")
	step("desktop viewport", chromedp.EmulateViewport(1280, 900))

	// A wrong code: the error, the proposal still pending.
	wrong := "000000"
	for _, at := range []time.Time{time.Now().Add(-30 * time.Second), time.Now(), time.Now().Add(30 * time.Second)} {
		if code(at) == wrong {
			wrong = "111111"
		}
	}
	step("wrong code", chromedp.Click(`#d-approve`), chromedp.SendKeys(`#totp`, wrong),
		chromedp.Click(`form.card button[type=submit]`), chromedp.WaitVisible(`p.msg.err`))
	alert := text(`p[role=alert]`)
	require.Contains(t, alert, "wrong or expired TOTP code")
	// Still signed in (a wrong code is no reason to end the session): the form is there.
	step("still signed in", chromedp.WaitVisible(`#totp`))
	require.Contains(t, text("header"), "ana")
	p := get(id)
	require.Equal(t, "PROPOSAL_STATUS_PENDING_APPROVAL", p.Status, "a wrong code changes nothing")
	require.Empty(t, p.Approvals, "a wrong code records no vote")
	shot("05-wrong-code")

	// The right code: approved.
	good := code(time.Now())
	step("approve", chromedp.Click(`#d-approve`), chromedp.SendKeys(`#reason`, "capacity for the sale"),
		chromedp.SendKeys(`#totp`, good), chromedp.Click(`form.card button[type=submit]`),
		chromedp.WaitVisible(`p.msg.ok`))
	require.Contains(t, text(`p[role=status]`), "The proposal is now APPROVED.")
	require.Equal(t, ui+"/p/"+id+"?done=APPROVED", location())
	after := text("main")
	require.Regexp(t, `Status\nAPPROVED\n`, after)
	require.Regexp(t, `Approved by\nana\n`, after, "the page lists the vote")
	require.Regexp(t, `Still needed\nnothing\n`, after)
	step("no vote form any more", chromedp.WaitNotPresent(`#totp`))
	shot("06-approved")

	p = get(id)
	require.Equal(t, "PROPOSAL_STATUS_APPROVED", p.Status)
	require.Len(t, p.Approvals, 1)
	a := p.Approvals[0]
	require.Equal(t, "page", a.Channel, "the vote came from the page")
	require.Equal(t, "approve", a.Decision)
	require.Equal(t, "ana", a.Approver)
	require.Equal(t, "capacity for the sale", a.Reason)
	require.Equal(t, "totp", a.MFAMethod)
	require.True(t, a.MFAVerified)

	// From the plain client, with the session but without the CSRF token: 403, and the
	// other proposal is unchanged. The code is a fresh one (the next step: the current
	// one was just used), so nothing but the missing CSRF token refuses it.
	next := code(time.Now().Add(30 * time.Second))
	form := url.Values{"decision": {"deny"}, "reason": {"no csrf"}, "totp": {next}}
	resp, body = send(http.MethodPost, "/p/"+other+"/decide", session, form)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	require.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
	q := get(other)
	require.Equal(t, "PROPOSAL_STATUS_PENDING_APPROVAL", q.Status, "a POST without the CSRF token changes nothing")
	require.Empty(t, q.Approvals)
	// Another proposal's CSRF token (with the same session) is refused the same way.
	form.Set("csrf", csrfOfID)
	resp, body = send(http.MethodPost, "/p/"+other+"/decide", session, form)
	require.Equal(t, http.StatusForbidden, resp.StatusCode, body)
	require.Equal(t, "PROPOSAL_STATUS_PENDING_APPROVAL", get(other).Status)

	// Control: the same POST with the form's own CSRF token is accepted (so the 403s
	// above were the CSRF check's): ana's denial ends the other proposal DENIED.
	resp, body = send(http.MethodGet, "/p/"+other, session, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, body)
	m = csrfField.FindStringSubmatch(body)
	require.NotNil(t, m, "the detail page's form has a CSRF field")
	form.Set("csrf", m[1])
	resp, body = send(http.MethodPost, "/p/"+other+"/decide", session, form)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, body)
	require.Equal(t, "/ui/p/"+other+"?done=DENIED", resp.Header.Get("Location"))
	q = get(other)
	require.Equal(t, "PROPOSAL_STATUS_DENIED", q.Status)
	require.Len(t, q.Approvals, 1)
	require.Equal(t, "page", q.Approvals[0].Channel)
	require.Equal(t, "deny", q.Approvals[0].Decision)

	// Finally the pending list in the browser is empty.
	step("empty pending list", chromedp.Navigate(ui+"/pending"), chromedp.WaitVisible(`main h1`))
	require.Contains(t, text("main"), "Nothing is waiting for an approval.")
	shot("07-pending-empty")
	t.Logf("screenshots in %s", shots)
}
