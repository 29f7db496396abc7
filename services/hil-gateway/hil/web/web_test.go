package web

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/decision-fabric/fabric/internal/auth"
)

const (
	webToken     = "good.token.alice"
	webTokenBob  = "good.token.bob"
	webGoodTOTP  = "123456"
	webItemID    = "prop-01"
	webBase      = "/ui"
	webRLO       = "\u202E"
	webRLOEscape = `\u202E`
)

var webNow = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

// webFake is a Backend holding items in memory. Decide approves or denies when the
// TOTP is 123456 and fails with Unauthenticated otherwise (as the hil-gateway answers
// a wrong, expired or replayed code), unless decideErr is set. With expireOnDecide,
// Decide ends the session: Authenticate refuses every token afterwards.
type webFake struct {
	mu          sync.Mutex
	items       []*Item
	authCalls   int
	decideCalls int
	last        Decision
	lastSubject string
	decideErr   error
	itemErr     error
	// expireOnDecide: Decide expires the tokens (Authenticate refuses them after).
	expireOnDecide bool
	expired        bool
}

func (f *webFake) Authenticate(_ context.Context, token string) (*auth.Principal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.authCalls++
	if f.expired {
		return nil, status.Error(codes.Unauthenticated, "token expired")
	}
	switch token {
	case webToken:
		return &auth.Principal{Subject: "alice", TenantID: "t1", Roles: []string{"approver"}, Token: token}, nil
	case webTokenBob:
		return &auth.Principal{Subject: "bob", TenantID: "t1", Roles: []string{"approver"}, Token: token}, nil
	}
	return nil, status.Error(codes.Unauthenticated, "token signature is invalid")
}

func (f *webFake) Pending(ctx context.Context) ([]Item, error) {
	if auth.FromContext(ctx) == nil {
		return nil, status.Error(codes.Unauthenticated, "no principal")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Item, 0, len(f.items))
	for _, it := range f.items {
		out = append(out, *it)
	}
	return out, nil
}

func (f *webFake) Item(ctx context.Context, id string) (*Item, error) {
	if auth.FromContext(ctx) == nil {
		return nil, status.Error(codes.Unauthenticated, "no principal")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.itemErr != nil {
		return nil, f.itemErr
	}
	for _, it := range f.items {
		if it.ProposalID == id {
			c := *it
			return &c, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "proposal %s not found", id)
}

func (f *webFake) Decide(ctx context.Context, id string, d Decision) (string, error) {
	p := auth.FromContext(ctx)
	if p == nil {
		return "", status.Error(codes.Unauthenticated, "no principal")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.decideCalls++
	f.last = d
	f.lastSubject = p.Subject
	if f.expireOnDecide {
		f.expired = true
	}
	if f.decideErr != nil {
		return "", f.decideErr
	}
	if d.TOTP != webGoodTOTP {
		return "", status.Error(codes.Unauthenticated, "wrong or expired TOTP code")
	}
	for _, it := range f.items {
		if it.ProposalID == id {
			if d.Approve {
				it.Status = "APPROVED"
				it.ApprovedBy = append(it.ApprovedBy, p.Subject)
			} else {
				it.Status = "DENIED"
				it.DeniedBy = append(it.DeniedBy, p.Subject)
			}
			it.CanVote, it.WhyNot, it.Needed = false, "You have voted on this proposal.", nil
			return it.Status, nil
		}
	}
	return "", status.Errorf(codes.NotFound, "proposal %s not found", id)
}

func (f *webFake) calls() (auth, decide int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.authCalls, f.decideCalls
}

func (f *webFake) status(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.items[i].Status
}

func (f *webFake) lastDecision() Decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func webItem() *Item {
	return &Item{
		ProposalID: webItemID,
		TenantID:   "t1",
		Status:     "PENDING_APPROVAL",
		Impact:     "HIGH",
		Action:     "scale",
		Target:     "db" + webRLO + "evil",
		Regions:    []string{"eu-west-1", "us-east-1"},
		Manifest:   "{\n  \"action\": \"scale\",\n  \"replicas\": 7\n}",
		Diff: []DiffLine{
			{Path: "spec.replicas", Before: "3", After: "7"},
			{Path: "spec.note", Before: "", After: "<script>alert(1)</script>"},
		},
		VotesAccept: 2, VotesReject: 1, VotesCounter: 0, VotesAbstain: 1,
		Confidence: 0.82, RiskScore: 0.61, RiskLevel: "HIGH",
		Explanation:   "Scaling <b>up</b> the primary \u200b database",
		PolicyReasons: []string{"impact HIGH in production needs two approvers", "region eu-west-1 is frozen\u2066"},
		ApprovedBy:    []string{"carol"},
		Needed:        []string{"1 more of group sre"},
		Deadline:      webNow.Add(2*time.Hour + 5*time.Minute),
		CanVote:       true,
	}
}

func webSetup(t *testing.T) (*webFake, *Page, http.Handler) {
	t.Helper()
	f := &webFake{items: []*Item{webItem()}}
	p := New(f, Options{CSRFKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return webNow }})
	mux := http.NewServeMux()
	p.Register(mux)
	return f, p, mux
}

type webReq struct {
	method, path string
	form         url.Values
	cookie       string
	header       map[string]string
}

func webDo(t *testing.T, h http.Handler, r webReq) *httptest.ResponseRecorder {
	t.Helper()
	var req *http.Request
	if r.form != nil {
		req = httptest.NewRequest(r.method, r.path, strings.NewReader(r.form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(r.method, r.path, nil)
	}
	if r.cookie != "" {
		req.AddCookie(&http.Cookie{Name: SessionCookie, Value: r.cookie})
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func webWant(t *testing.T, w *httptest.ResponseRecorder, code int, contains ...string) string {
	t.Helper()
	body := w.Body.String()
	if w.Code != code {
		t.Fatalf("status %d, want %d; body:\n%s", w.Code, code, body)
	}
	for _, s := range contains {
		if !strings.Contains(body, s) {
			t.Errorf("body lacks %q; body:\n%s", s, body)
		}
	}
	return body
}

func webDecideForm(p *Page, token, id, decision, totp string) url.Values {
	return url.Values{"csrf": {p.csrf(token, id)}, "decision": {decision}, "reason": {"looks right"}, "totp": {totp}}
}

func TestWebSignIn(t *testing.T) {
	_, _, h := webSetup(t)

	w := webDo(t, h, webReq{method: "GET", path: "/ui/"})
	webWant(t, w, http.StatusOK, `<html lang="en">`, `<label for="token">`, `id="token" name="token"`,
		`action="/ui/login"`, "make token ROLE=approver SUBJECT=alice", `name="viewport"`, `class="skip" href="#main"`)

	w = webDo(t, h, webReq{method: "POST", path: "/ui/login", form: url.Values{"token": {"forged"}}})
	webWant(t, w, http.StatusUnauthorized, `role="alert"`, "token signature is invalid", `name="token"`)
	if c := w.Result().Cookies(); len(c) != 0 {
		t.Errorf("a refused sign-in set cookies %v", c)
	}

	w = webDo(t, h, webReq{method: "POST", path: "/ui/login", form: url.Values{"token": {webToken}}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/pending" {
		t.Fatalf("sign-in: %d to %q, want 303 to /ui/pending", w.Code, w.Header().Get("Location"))
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies %v, want one", cs)
	}
	c := cs[0]
	if c.Name != SessionCookie || c.Value != webToken || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != webBase || c.Secure {
		t.Errorf("session cookie %+v: want df_session=token, HttpOnly, SameSite=Strict, Path=/ui, not Secure (Options.Secure false)", c)
	}

	w = webDo(t, h, webReq{method: "GET", path: "/ui/", cookie: webToken})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/pending" {
		t.Errorf("signed-in GET /ui/: %d to %q, want 303 to /ui/pending", w.Code, w.Header().Get("Location"))
	}

	// Options.Secure sets the cookie's Secure flag; a custom base path is the cookie's path.
	sp := New(&webFake{}, Options{BasePath: "/approvals/", Secure: true})
	mux := http.NewServeMux()
	sp.Register(mux)
	w = webDo(t, mux, webReq{method: "POST", path: "/approvals/login", form: url.Values{"token": {webToken}}})
	if w.Code != http.StatusSeeOther || len(w.Result().Cookies()) != 1 || !w.Result().Cookies()[0].Secure ||
		w.Result().Cookies()[0].Path != "/approvals" || w.Header().Get("Location") != "/approvals/pending" {
		t.Errorf("Secure page sign-in: %d %v %q", w.Code, w.Result().Cookies(), w.Header().Get("Location"))
	}
}

func TestWebSignOut(t *testing.T) {
	_, p, h := webSetup(t)
	w := webDo(t, h, webReq{method: "POST", path: "/ui/logout", cookie: webToken, form: url.Values{}})
	webWant(t, w, http.StatusForbidden)
	w = webDo(t, h, webReq{method: "POST", path: "/ui/logout", cookie: webToken, form: url.Values{"csrf": {p.csrf(webToken, "")}}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/" {
		t.Fatalf("logout: %d to %q", w.Code, w.Header().Get("Location"))
	}
	cs := w.Result().Cookies()
	if len(cs) != 1 || cs[0].Name != SessionCookie || cs[0].Value != "" || cs[0].MaxAge >= 0 {
		t.Errorf("logout cookies %v: want df_session cleared", cs)
	}
}

func TestWebUnauthenticated(t *testing.T) {
	f, p, h := webSetup(t)
	for _, path := range []string{"/ui/pending", "/ui/p/" + webItemID} {
		for _, cookie := range []string{"", "expired-or-forged"} {
			w := webDo(t, h, webReq{method: "GET", path: path, cookie: cookie})
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/" {
				t.Errorf("GET %s cookie %q: %d to %q, want 303 to /ui/", path, cookie, w.Code, w.Header().Get("Location"))
			}
			if strings.Contains(w.Body.String(), webItemID) {
				t.Errorf("GET %s without a session shows the proposal", path)
			}
		}
	}
	// A POST with a forged session is refused even with the CSRF token matching it.
	w := webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: "forged",
		form: webDecideForm(p, "forged", webItemID, "approve", webGoodTOTP)})
	webWant(t, w, http.StatusUnauthorized, `role="alert"`)
	w = webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide",
		form: webDecideForm(p, "", webItemID, "approve", webGoodTOTP)})
	webWant(t, w, http.StatusUnauthorized)
	if _, n := f.calls(); n != 0 {
		t.Errorf("Decide called %d times without a session", n)
	}
}

func TestWebPendingList(t *testing.T) {
	f, _, h := webSetup(t)
	second := webItem()
	second.ProposalID, second.Impact, second.Action, second.ApprovedBy, second.DeniedBy = "prop-02", "CRITICAL", "failover", nil, []string{"dave"}
	f.items = append(f.items, second)

	w := webDo(t, h, webReq{method: "GET", path: "/ui/pending", cookie: webToken})
	body := webWant(t, w, http.StatusOK,
		"<h1>Pending approvals</h1>", "2 proposals waiting",
		`<a href="/ui/p/prop-01">`, `<a href="/ui/p/prop-02">`,
		"HIGH", "CRITICAL", "scale", "failover", "eu-west-1, us-east-1",
		"1 approved", "0 approved, 1 denied",
		"2026-12-06 12:05 UTC (in 2h5m)",
		"Signed in as <strong>alice</strong>", `class="scroll"`)
	if strings.Count(body, "<h1") != 1 {
		t.Errorf("want exactly one h1")
	}
	if strings.Index(body, "prop-01") > strings.Index(body, "prop-02") {
		t.Errorf("items out of the Backend's order")
	}

	f.items = nil
	w = webDo(t, h, webReq{method: "GET", path: "/ui/pending", cookie: webToken})
	webWant(t, w, http.StatusOK, "Nothing is waiting")
}

func TestWebDetail(t *testing.T) {
	f, p, h := webSetup(t)
	w := webDo(t, h, webReq{method: "GET", path: "/ui/p/" + webItemID, cookie: webToken})
	body := webWant(t, w, http.StatusOK,
		"<pre class=\"manifest\" tabindex=\"0\">{\n  &#34;action&#34;: &#34;scale&#34;,\n  &#34;replicas&#34;: 7\n}</pre>",
		`<td class="mono">spec.replicas</td><td class="mono before">3</td><td class="mono after">7</td>`,
		"2 accept, 1 reject, 0 counter, 1 abstain", "82%", "0.61 (HIGH)",
		"impact HIGH in production needs two approvers", "<dt>Approved by</dt><dd>carol</dd>",
		"<dt>Denied by</dt><dd>nobody</dd>", "1 more of group sre", "2026-12-06 12:05 UTC (in 2h5m)",
		`action="/ui/p/prop-01/decide"`,
		"<fieldset>", "<legend>Decision</legend>",
		`<input type="radio" id="d-approve" name="decision" value="approve"`, `<label for="d-approve">Approve</label>`,
		`<input type="radio" id="d-deny" name="decision" value="deny"`, `<label for="d-deny">Deny</label>`,
		`<label for="reason">`, `<textarea id="reason" name="reason"`,
		`<label for="totp">`, `inputmode="numeric"`, `autocomplete="one-time-code"`, `pattern="[0-9]{6}"`,
		`<input type="hidden" name="csrf" value="`+p.csrf(webToken, webItemID)+`">`)
	if !strings.Contains(body, `id="totp" name="totp"`) || !strings.Contains(body[strings.Index(body, `id="totp"`):], "required") {
		t.Error("the TOTP input is not required")
	}
	if strings.Count(body, "<h1") != 1 {
		t.Errorf("want exactly one h1")
	}

	// Without the right to vote: the reason, and no form.
	f.items[0].CanVote, f.items[0].WhyNot = false, "You proposed this change <yourself>."
	w = webDo(t, h, webReq{method: "GET", path: "/ui/p/" + webItemID, cookie: webToken})
	body = webWant(t, w, http.StatusOK, "You proposed this change &lt;yourself&gt;.")
	if strings.Contains(body, "/decide") || strings.Contains(body, `name="totp"`) {
		t.Error("a proposal the principal cannot vote on shows the vote form")
	}

	w = webDo(t, h, webReq{method: "GET", path: "/ui/p/nope", cookie: webToken})
	webWant(t, w, http.StatusNotFound, "proposal nope not found", `role="alert"`)
}

func TestWebDecideSuccess(t *testing.T) {
	f, p, h := webSetup(t)
	w := webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken,
		form: webDecideForm(p, webToken, webItemID, "approve", " 123 456 ")})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/p/prop-01?done=APPROVED" {
		t.Fatalf("decide: %d to %q; body %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	if _, n := f.calls(); n != 1 || !f.last.Approve || f.last.TOTP != webGoodTOTP || f.last.Reason != "looks right" || f.lastSubject != "alice" {
		t.Errorf("Decide calls %d, last %+v by %q", n, f.last, f.lastSubject)
	}
	w = webDo(t, h, webReq{method: "GET", path: w.Header().Get("Location"), cookie: webToken})
	body := webWant(t, w, http.StatusOK, `role="status"`, "The proposal is now APPROVED.", "<dt>Approved by</dt><dd>carol, alice</dd>",
		"You have voted on this proposal.")
	if strings.Contains(body, `name="totp"`) {
		t.Error("the form is still shown after the vote")
	}

	// The flash comes from the query: it is shown escaped.
	w = webDo(t, h, webReq{method: "GET", path: "/ui/p/prop-01?done=" + url.QueryEscape("<script>x</script>"+webRLO), cookie: webToken})
	body = webWant(t, w, http.StatusOK, "&lt;script&gt;x&lt;/script&gt;"+`<span class="ctl">\u202E</span>`)
	if strings.Contains(body, "<script>") {
		t.Error("the flash message is rendered as markup")
	}

	// Deny.
	f2, p2, h2 := webSetup(t)
	w = webDo(t, h2, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webTokenBob,
		form: webDecideForm(p2, webTokenBob, webItemID, "deny", webGoodTOTP)})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/p/prop-01?done=DENIED" || f2.last.Approve || f2.lastSubject != "bob" {
		t.Errorf("deny: %d to %q, last %+v", w.Code, w.Header().Get("Location"), f2.last)
	}
}

func TestWebDecideBackendError(t *testing.T) {
	cases := []struct {
		err  error
		code int
		msg  string
	}{
		{status.Error(codes.Unauthenticated, "token expired"), 401, "token expired"},
		{status.Error(codes.PermissionDenied, "the MFA code is not valid"), 403, "the MFA code is not valid"},
		{status.Error(codes.NotFound, "proposal prop-01 not found"), 404, "proposal prop-01 not found"},
		{status.Error(codes.FailedPrecondition, "the deadline has passed"), 409, "the deadline has passed"},
		{status.Error(codes.InvalidArgument, "reason too long"), 400, "reason too long"},
		{status.Error(codes.ResourceExhausted, "too many attempts, wait a minute"), 429, "too many attempts, wait a minute"},
		{status.Error(codes.Internal, "pq: secret table layout"), 500, "Something went wrong"},
		{status.Error(codes.Unavailable, "dial tcp 10.0.0.7:5432"), 500, "Something went wrong"},
		{errors.New("plain error with internals"), 500, "Something went wrong"},
	}
	for _, tc := range cases {
		t.Run(tc.msg, func(t *testing.T) {
			f, p, h := webSetup(t)
			f.decideErr = tc.err
			f.expireOnDecide = tc.code == 401 // the token expired under the approver
			w := webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken,
				form: webDecideForm(p, webToken, webItemID, "deny", webGoodTOTP)})
			body := webWant(t, w, tc.code, `role="alert"`, tc.msg)
			if tc.code == 500 && (strings.Contains(body, "secret") || strings.Contains(body, "10.0.0.7") || strings.Contains(body, "internals")) {
				t.Error("an internal error's text reaches the page")
			}
			if _, n := f.calls(); n != 1 {
				t.Errorf("Decide calls %d, want 1", n)
			}
			if tc.code != 401 {
				// The proposal is shown again with the approver's choice and reason kept.
				webWant(t, w, tc.code, `id="d-deny" name="decision" value="deny" checked`, ">looks right</textarea>", "spec.replicas")
			} else if cs := w.Result().Cookies(); len(cs) != 1 || cs[0].MaxAge >= 0 {
				t.Errorf("a 401 from the Backend keeps the session: %v", cs)
			}
		})
	}

	// A wrong code from the fake (no forced error): 401 with its message, as the
	// hil-gateway answers it; the session token still authenticates, so the approver
	// stays signed in (no cookie is cleared) and can enter the next code.
	f, p, h := webSetup(t)
	w := webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken,
		form: webDecideForm(p, webToken, webItemID, "approve", "000000")})
	webWant(t, w, http.StatusUnauthorized, "wrong or expired TOTP code", `name="totp"`, `id="d-approve" name="decision" value="approve" required checked`)
	if cs := w.Result().Cookies(); len(cs) != 0 {
		t.Errorf("a wrong TOTP code ends the session: %v", cs)
	}
	if f.items[0].Status != "PENDING_APPROVAL" {
		t.Error("a wrong code changed the status")
	}
	// The right code next, with the same session: recorded.
	w = webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken,
		form: webDecideForm(p, webToken, webItemID, "approve", webGoodTOTP)})
	if w.Code != http.StatusSeeOther || f.items[0].Status != "APPROVED" {
		t.Errorf("the right code after a wrong one: %d, status %s", w.Code, f.items[0].Status)
	}
	// The item cannot be shown again either: the error alone, still signed in.
	f.items[0].Status, f.items[0].CanVote = "PENDING_APPROVAL", true
	f.itemErr = status.Error(codes.NotFound, "gone")
	w = webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken,
		form: webDecideForm(p, webToken, webItemID, "approve", "000000")})
	webWant(t, w, http.StatusUnauthorized, "wrong or expired TOTP code")
	if cs := w.Result().Cookies(); len(cs) != 0 {
		t.Errorf("a wrong TOTP code ends the session: %v", cs)
	}
}

func TestWebDecideBadForm(t *testing.T) {
	f, p, h := webSetup(t)
	for name, form := range map[string]url.Values{
		"no decision":    webDecideForm(p, webToken, webItemID, "", webGoodTOTP),
		"odd decision":   webDecideForm(p, webToken, webItemID, "maybe", webGoodTOTP),
		"short code":     webDecideForm(p, webToken, webItemID, "approve", "12345"),
		"letters":        webDecideForm(p, webToken, webItemID, "approve", "12a456"),
		"no code at all": webDecideForm(p, webToken, webItemID, "approve", ""),
	} {
		w := webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken, form: form})
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `role="alert"`) {
			t.Errorf("%s: %d, want 400 with an alert", name, w.Code)
		}
	}
	if _, n := f.calls(); n != 0 {
		t.Errorf("Decide called %d times on invalid forms", n)
	}
}

func TestWebCSRF(t *testing.T) {
	f, p, h := webSetup(t)
	valid := webDecideForm(p, webToken, webItemID, "approve", webGoodTOTP)
	other := New(f, Options{CSRFKey: []byte("another key, another process....")})
	for name, csrf := range map[string][]string{
		"missing":               nil,
		"empty":                 {""},
		"wrong":                 {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		"other proposal":        {p.csrf(webToken, "prop-02")},
		"other session":         {p.csrf(webTokenBob, webItemID)},
		"other key":             {other.csrf(webToken, webItemID)},
		"valid with extra char": {valid.Get("csrf") + "x"},
	} {
		form := webDecideForm(p, webToken, webItemID, "approve", webGoodTOTP)
		if csrf == nil {
			form.Del("csrf")
		} else {
			form["csrf"] = csrf
		}
		w := webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken, form: form})
		if w.Code != http.StatusForbidden {
			t.Errorf("%s CSRF token: %d, want 403", name, w.Code)
		}
	}
	// The token in the query string does not count: it must be in the POST body.
	w := webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide?csrf=" + url.QueryEscape(valid.Get("csrf")), cookie: webToken,
		form: url.Values{"decision": {"approve"}, "totp": {webGoodTOTP}}})
	webWant(t, w, http.StatusForbidden)
	if _, n := f.calls(); n != 0 {
		t.Fatalf("Decide called %d times with a bad CSRF token", n)
	}
	// The valid token works (so the refusals above are about the token).
	w = webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken, form: valid})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("valid CSRF token: %d", w.Code)
	}
}

func TestWebCrossOrigin(t *testing.T) {
	f, p, h := webSetup(t)
	valid := webDecideForm(p, webToken, webItemID, "approve", webGoodTOTP)
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "https://evil.example"},
	} {
		authBefore, _ := f.calls()
		w := webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken, form: valid, header: hdr})
		webWant(t, w, http.StatusForbidden, "another site")
		if a, _ := f.calls(); a != authBefore {
			t.Errorf("cross-site decide %v reached the Backend", hdr)
		}
		w = webDo(t, h, webReq{method: "POST", path: "/ui/login", form: url.Values{"token": {webToken}}, header: hdr})
		webWant(t, w, http.StatusForbidden)
		if len(w.Result().Cookies()) != 0 {
			t.Errorf("cross-site login %v set a cookie", hdr)
		}
		if a, _ := f.calls(); a != authBefore {
			t.Errorf("cross-site login %v reached Authenticate", hdr)
		}
		w = webDo(t, h, webReq{method: "POST", path: "/ui/logout", cookie: webToken, form: url.Values{"csrf": {p.csrf(webToken, "")}}, header: hdr})
		webWant(t, w, http.StatusForbidden)
	}
	if _, n := f.calls(); n != 0 {
		t.Fatalf("Decide called %d times from another site", n)
	}
	// Same-origin browser POST passes.
	w := webDo(t, h, webReq{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken, form: valid,
		header: map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://example.com"}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("same-origin POST: %d", w.Code)
	}
}

func TestWebSecurityHeaders(t *testing.T) {
	_, p, h := webSetup(t)
	for _, r := range []webReq{
		{method: "GET", path: "/ui/"},
		{method: "GET", path: "/ui"},
		{method: "GET", path: "/ui/pending", cookie: webToken},
		{method: "GET", path: "/ui/pending"},
		{method: "GET", path: "/ui/p/" + webItemID, cookie: webToken},
		{method: "GET", path: "/ui/p/missing", cookie: webToken},
		{method: "GET", path: "/ui/static/app.css"},
		{method: "GET", path: "/ui/no/such/page"},
		{method: "DELETE", path: "/ui/pending", cookie: webToken},
		{method: "POST", path: "/ui/login", form: url.Values{"token": {"bad"}}},
		{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken, form: url.Values{}},
		{method: "POST", path: "/ui/p/" + webItemID + "/decide", cookie: webToken, form: webDecideForm(p, webToken, webItemID, "approve", webGoodTOTP),
			header: map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		w := webDo(t, h, r)
		for k, v := range map[string]string{
			"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"Cache-Control":           "no-store",
			"X-Frame-Options":         "DENY",
		} {
			if got := w.Header().Get(k); got != v {
				t.Errorf("%s %s (%d): %s = %q, want %q", r.method, r.path, w.Code, k, got, v)
			}
		}
	}
	w := webDo(t, h, webReq{method: "GET", path: "/ui/static/app.css"})
	if w.Code != 200 || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") || !strings.Contains(w.Body.String(), ":focus") {
		t.Errorf("app.css: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	w = webDo(t, h, webReq{method: "GET", path: "/ui/no/such/page"})
	webWant(t, w, http.StatusNotFound, "There is no such page.")
	w = webDo(t, h, webReq{method: "GET", path: "/ui/"})
	if !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html; charset=utf-8") {
		t.Errorf("page content type %q", w.Header().Get("Content-Type"))
	}
	if strings.Contains(w.Body.String(), "<script") || strings.Contains(w.Body.String(), "style=") {
		t.Error("the page has script or inline style (the CSP forbids both)")
	}
}

func TestWebEscaping(t *testing.T) {
	f, _, h := webSetup(t)
	it := f.items[0]
	it.Action = "<script>alert('action')</script>"
	it.ApprovedBy = []string{"mallory\u202E"}
	it.Manifest = "{\"x\": \"</pre><script>alert(1)</script>\u2067\"}"
	for _, path := range []string{"/ui/pending", "/ui/p/" + webItemID} {
		w := webDo(t, h, webReq{method: "GET", path: path, cookie: webToken})
		body := webWant(t, w, http.StatusOK, `db<span class="ctl">\u202E</span>evil`, "&lt;script&gt;alert(&#39;action&#39;)&lt;/script&gt;")
		if strings.Contains(body, webRLO) {
			t.Errorf("%s: the raw U+202E reaches the HTML", path)
		}
		if strings.Contains(body, "<script") {
			t.Errorf("%s: a <script> from the item is rendered as markup", path)
		}
	}
	w := webDo(t, h, webReq{method: "GET", path: "/ui/p/" + webItemID, cookie: webToken})
	body := webWant(t, w, http.StatusOK,
		`mallory<span class="ctl">\u202E</span>`,
		`&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;<span class="ctl">\u2067</span>`,
		`primary <span class="ctl">\u200B</span> database`,
		`frozen<span class="ctl">\u2066</span>`,
		"Scaling &lt;b&gt;up&lt;/b&gt;",
		"&lt;script&gt;alert(1)&lt;/script&gt;</td>",
		`<title>Proposal prop-01`)
	for _, raw := range []string{"\u202E", "\u2066", "\u2067", "\u200B"} {
		if strings.Contains(body, raw) {
			t.Errorf("raw %U in the detail page", []rune(raw)[0])
		}
	}
}

func TestWebVisible(t *testing.T) {
	for in, want := range map[string]string{
		"plain text":       "plain text",
		"a\nb\tc":          "a\nb\tc",
		"<a href=\"x\">&'": "&lt;a href=&#34;x&#34;&gt;&amp;&#39;",
		"db\u202Eevil":     `db<span class="ctl">\u202E</span>evil`,
		"\u2066x\u2069":    `<span class="ctl">\u2066</span>x<span class="ctl">\u2069</span>`,
		"a\u200Bb\u200Fc":  `a<span class="ctl">\u200B</span>b<span class="ctl">\u200F</span>c`,
		"\uFEFFbom":        `<span class="ctl">\uFEFF</span>bom`,
		"nul\x00bell\a\r":  `nul<span class="ctl">\u0000</span>bell<span class="ctl">\u0007</span><span class="ctl">\u000D</span>`,
		"c1\u0085":         `c1<span class="ctl">\u0085</span>`,
		"line\u2028sep":    `line<span class="ctl">\u2028</span>sep`,
		"bad\xffutf8":      `bad<span class="ctl">\xFF</span>utf8`,
		"héllo wörld ✓ 日本": "héllo wörld ✓ 日本",
		"":                 "",
	} {
		if got := string(visible(in)); got != want {
			t.Errorf("visible(%q) = %q, want %q", in, got, want)
		}
	}
	if got := plain("a\u202Eb\nc"); got != `a\u202Eb\u000Ac` {
		t.Errorf("plain = %q", got)
	}
}

var webEventAttr = regexp.MustCompile(`\son[a-z]+=`)

// TestWebAccessible checks on every page: the language, one h1, the skip link to
// main, a label for every visible input, no inline style or script (the CSP blocks
// both), and the phone viewport.
func TestWebAccessible(t *testing.T) {
	f, _, h := webSetup(t)
	f.items[0].ApprovedBy = nil
	inputID := regexp.MustCompile(`<(?:input|textarea)\b[^>]*>`)
	idAttr := regexp.MustCompile(`\bid="([^"]+)"`)
	for _, r := range []webReq{
		{method: "GET", path: "/ui/"},
		{method: "GET", path: "/ui/pending", cookie: webToken},
		{method: "GET", path: "/ui/p/" + webItemID, cookie: webToken},
		{method: "GET", path: "/ui/p/missing", cookie: webToken},
		{method: "POST", path: "/ui/login", form: url.Values{"token": {"bad"}}},
	} {
		w := webDo(t, h, r)
		body := w.Body.String()
		for _, want := range []string{`<html lang="en">`, `<meta name="viewport" content="width=device-width, initial-scale=1">`,
			`<a class="skip" href="#main">`, `<main id="main"`, `<link rel="stylesheet" href="/ui/static/app.css">`} {
			if !strings.Contains(body, want) {
				t.Errorf("%s %s lacks %q", r.method, r.path, want)
			}
		}
		if n := strings.Count(body, "<h1"); n != 1 {
			t.Errorf("%s %s has %d h1", r.method, r.path, n)
		}
		if strings.Contains(body, "style=") || strings.Contains(body, "<style") || strings.Contains(body, "<script") || webEventAttr.MatchString(body) {
			t.Errorf("%s %s has inline style, script or an event handler", r.method, r.path)
		}
		for _, tag := range inputID.FindAllString(body, -1) {
			if strings.Contains(tag, `type="hidden"`) {
				continue
			}
			m := idAttr.FindStringSubmatch(tag)
			if m == nil || !strings.Contains(body, `<label for="`+m[1]+`"`) {
				t.Errorf("%s %s: no label for %s", r.method, r.path, tag)
			}
		}
		if w.Code >= 400 && !strings.Contains(body, `role="alert"`) {
			t.Errorf("%s %s: error %d without role=alert", r.method, r.path, w.Code)
		}
	}
}

func TestWebDeadline(t *testing.T) {
	_, p, _ := webSetup(t)
	for d, want := range map[time.Duration]string{
		30 * time.Second:            "2026-12-06 10:00 UTC (in less than a minute)",
		45 * time.Minute:            "2026-12-06 10:45 UTC (in 45m)",
		2*time.Hour + 5*time.Minute: "2026-12-06 12:05 UTC (in 2h5m)",
		73 * time.Hour:              "2026-12-09 11:00 UTC (in 3d1h)",
		-time.Minute:                "2026-12-06 09:59 UTC (passed)",
	} {
		if got := p.deadline(webNow.Add(d)); got != want {
			t.Errorf("deadline(now%+v) = %q, want %q", d, got, want)
		}
	}
	if got := p.deadline(time.Time{}); got != "none" {
		t.Errorf("zero deadline %q", got)
	}
}
