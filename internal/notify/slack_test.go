package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testSlackToken  = "xoxb-test-token-do-not-log"
	testSlackSecret = "signing-secret-do-not-log"
	testProposalID  = "01JTESTPROPOSAL0000000000A"
)

// fakeSlack plays Slack's Web API: it records each call's decoded payload and
// answers with the configured error code ("" is ok).
type fakeSlack struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	posts    []url.Values
	views    []map[string]any
	authHdrs []string
	failWith string // Slack error code for every call
	status   int    // HTTP status for every call (0 is 200)
	retryHdr string
}

func newFakeSlack(t *testing.T) *fakeSlack {
	t.Helper()
	f := &fakeSlack{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSlack) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	failWith, status, retry := f.failWith, f.status, f.retryHdr
	switch r.URL.Path {
	case "/chat.postMessage":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			f.t.Errorf("chat.postMessage body is not a form: %v", err)
		}
		f.posts = append(f.posts, v)
	case "/views.open":
		var v map[string]any
		if err := json.Unmarshal(body, &v); err != nil {
			f.t.Errorf("views.open body is not JSON: %v", err)
		}
		f.views = append(f.views, v)
		f.authHdrs = append(f.authHdrs, r.Header.Get("Authorization"))
	default:
		f.t.Errorf("unexpected Slack API call %s", r.URL.Path)
	}
	f.mu.Unlock()
	if retry != "" {
		w.Header().Set("Retry-After", retry)
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if failWith != "" {
		_, _ = io.WriteString(w, `{"ok":false,"error":"`+failWith+`"}`)
		return
	}
	_, _ = io.WriteString(w, `{"ok":true,"channel":"C123","ts":"1700000000.000100","view":{"id":"V1"}}`)
}

func (f *fakeSlack) Posts() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.posts...)
}

func (f *fakeSlack) Views() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.views...)
}

func newTestSlack(t *testing.T, f *fakeSlack) *Slack {
	t.Helper()
	s, err := NewSlack(SlackConfig{Token: testSlackToken, ChannelID: "C123", SigningSecret: testSlackSecret, APIURL: f.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testMessage() Message {
	return Message{
		EventID:         testProposalID + "/request",
		Kind:            KindRequest,
		TenantID:        "tenant-a",
		ProposalID:      testProposalID,
		Impact:          "high",
		Summary:         "scale <payments> & co in eu-west-1",
		Deadline:        time.Date(2026, 12, 6, 18, 30, 0, 0, time.FixedZone("CET", 3600)),
		ApprovalsNeeded: 2,
		Link:            "https://fabric.example/approve/" + testProposalID,
	}
}

// jsonPath walks v by keys and indexes ("blocks", 0, "text").
func jsonPath(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: not an object: %#v", p, v)
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				t.Fatalf("at %v: not an array of more than %d: %#v", p, k, v)
			}
			v = a[k]
		}
	}
	return v
}

func TestSlackSendPostsBlocksButtonsAndMetadata(t *testing.T) {
	f := newFakeSlack(t)
	s := newTestSlack(t, f)
	m := testMessage()
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	posts := f.Posts()
	if len(posts) != 1 {
		t.Fatalf("got %d chat.postMessage calls, want 1", len(posts))
	}
	p := posts[0]
	if p.Get("channel") != "C123" {
		t.Errorf("channel = %q", p.Get("channel"))
	}
	if p.Get("token") != testSlackToken {
		t.Errorf("token not sent to the API")
	}
	// Nothing beyond the message's own fields leaves the process.
	var keys []string
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got := strings.Join(keys, ","); got != "blocks,channel,metadata,text,token" {
		t.Errorf("chat.postMessage fields = %s", got)
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(p.Get("metadata")), &meta); err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if payload, _ := meta["event_payload"].(map[string]any); len(payload) != 1 {
		t.Errorf("metadata payload = %v, want only event_id", payload)
	}
	if meta["event_type"] != "decision_fabric_notification" || jsonPath(t, meta, "event_payload", "event_id") != m.EventID {
		t.Errorf("metadata = %v", meta)
	}
	var blocks []any
	if err := json.Unmarshal([]byte(p.Get("blocks")), &blocks); err != nil {
		t.Fatalf("blocks: %v", err)
	}
	if len(blocks) != 2 {
		t.Fatalf("got %d blocks, want section + actions: %s", len(blocks), p.Get("blocks"))
	}
	text, _ := jsonPath(t, blocks, 0, "text", "text").(string)
	for _, want := range []string{testProposalID, "tenant-a", "high", "scale &lt;payments&gt; &amp; co in eu-west-1", "Approvals needed:* 2", "2026-12-06 17:30:00 UTC"} {
		if !strings.Contains(text, want) {
			t.Errorf("section text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "<payments>") {
		t.Errorf("summary not escaped: %s", text)
	}
	if jsonPath(t, blocks, 1, "type") != "actions" {
		t.Fatalf("second block is not actions")
	}
	want := []struct{ id, value, style, url string }{
		{"df_approve", testProposalID, "primary", ""},
		{"df_deny", testProposalID, "danger", ""},
		{"df_open", "", "", m.Link},
	}
	elems, _ := jsonPath(t, blocks, 1, "elements").([]any)
	if len(elems) != len(want) {
		t.Fatalf("got %d buttons, want %d", len(elems), len(want))
	}
	for i, w := range want {
		get := func(k string) string { s, _ := jsonPath(t, elems, i, k).(string); return s }
		if get("type") != "button" || get("action_id") != w.id || get("value") != w.value || get("style") != w.style || get("url") != w.url {
			t.Errorf("button %d = %v, want %+v", i, elems[i], w)
		}
	}
}

func TestSlackSendResolvedHasNoVoteButtons(t *testing.T) {
	f := newFakeSlack(t)
	s := newTestSlack(t, f)
	m := testMessage()
	m.Kind, m.Outcome = KindResolved, "APPROVED"
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	b := f.Posts()[0].Get("blocks")
	if strings.Contains(b, "df_approve") || strings.Contains(b, "df_deny") || !strings.Contains(b, "APPROVED") {
		t.Errorf("resolved blocks: %s", b)
	}
}

func TestSlackSendErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failWith  string
		status    int
		retry     string
		permanent bool
	}{
		{"invalid_auth", "invalid_auth", 0, "", true},
		{"channel_not_found", "channel_not_found", 0, "", true},
		{"not_in_channel", "not_in_channel", 0, "", true},
		{"account_inactive", "account_inactive", 0, "", true},
		{"internal_error", "internal_error", 0, "", false},
		{"rate limited", "", http.StatusTooManyRequests, "3", false},
		{"server error", "", http.StatusServiceUnavailable, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSlack(t)
			f.failWith, f.status, f.retryHdr = tc.failWith, tc.status, tc.retry
			err := newTestSlack(t, f).Send(context.Background(), testMessage())
			if err == nil {
				t.Fatal("no error")
			}
			var pe *PermanentError
			if errors.As(err, &pe) != tc.permanent {
				t.Errorf("permanent = %v, want %v (%v)", !tc.permanent, tc.permanent, err)
			}
			if strings.Contains(err.Error(), testSlackToken) || strings.Contains(err.Error(), testSlackSecret) {
				t.Errorf("error carries a secret: %v", err)
			}
		})
	}
	t.Run("network", func(t *testing.T) {
		f := newFakeSlack(t)
		s := newTestSlack(t, f)
		f.srv.Close()
		err := s.Send(context.Background(), testMessage())
		var pe *PermanentError
		if err == nil || errors.As(err, &pe) {
			t.Fatalf("network error = %v, want a retryable error", err)
		}
		if strings.Contains(err.Error(), testSlackToken) {
			t.Errorf("error carries the token: %v", err)
		}
	})
}

// signedSlackRequest builds an interactivity POST signed with secret at ts.
func signedSlackRequest(t testing.TB, body, secret string, ts time.Time) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/slack/interactions", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	stamp := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	_, _ = io.WriteString(mac, "v0:"+stamp+":"+body)
	r.Header.Set("X-Slack-Request-Timestamp", stamp)
	r.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return r
}

func payloadBody(payload string) string {
	return url.Values{"payload": {payload}}.Encode()
}

func buttonPayload(actionID, value string) string {
	return `{"type":"block_actions","trigger_id":"trig.123","user":{"id":"U42"},` +
		`"actions":[{"type":"button","action_id":"` + actionID + `","block_id":"df_actions","value":"` + value + `"}]}`
}

func submissionPayload(meta, code, reason string) string {
	return `{"type":"view_submission","user":{"id":"U42"},"view":{"id":"V1","callback_id":"df_vote",` +
		`"private_metadata":"` + meta + `","state":{"values":{` +
		`"totp":{"code":{"type":"plain_text_input","value":"` + code + `"}},` +
		`"reason":{"text":{"type":"plain_text_input","value":"` + reason + `"}}}}}}`
}

// recordingAct is an ActionFunc that records its calls and answers reply, err.
type recordingAct struct {
	mu    sync.Mutex
	calls []Action
	reply string
	err   error
}

func (a *recordingAct) act(_ context.Context, x Action) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, x)
	return a.reply, a.err
}

func (a *recordingAct) Calls() []Action {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Action(nil), a.calls...)
}

func TestSlackInteractionSignature(t *testing.T) {
	f := newFakeSlack(t)
	s := newTestSlack(t, f)
	rec := &recordingAct{}
	h := s.InteractionHandler(rec.act)
	body := payloadBody(submissionPayload("approve|"+testProposalID, "123456", ""))

	for _, tc := range []struct {
		name string
		req  func() *http.Request
		want int
	}{
		{"good", func() *http.Request { return signedSlackRequest(t, body, testSlackSecret, time.Now()) }, http.StatusOK},
		{"bad signature", func() *http.Request { return signedSlackRequest(t, body, "other-secret", time.Now()) }, http.StatusUnauthorized},
		{"tampered body", func() *http.Request {
			r := signedSlackRequest(t, body, testSlackSecret, time.Now())
			r.Body = io.NopCloser(strings.NewReader(strings.Replace(body, "123456", "654321", 1)))
			return r
		}, http.StatusUnauthorized},
		{"stale timestamp", func() *http.Request {
			return signedSlackRequest(t, body, testSlackSecret, time.Now().Add(-6*time.Minute))
		}, http.StatusUnauthorized},
		{"future timestamp", func() *http.Request {
			return signedSlackRequest(t, body, testSlackSecret, time.Now().Add(6*time.Minute))
		}, http.StatusUnauthorized},
		{"no headers", func() *http.Request {
			return httptest.NewRequest(http.MethodPost, "/slack/interactions", strings.NewReader(body))
		}, http.StatusUnauthorized},
		{"too large", func() *http.Request {
			return signedSlackRequest(t, body+"&pad="+strings.Repeat("x", 64<<10), testSlackSecret, time.Now())
		}, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.Calls())
			w := httptest.NewRecorder()
			h.ServeHTTP(w, tc.req())
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.want, w.Body)
			}
			called := len(rec.Calls()) - before
			if tc.want == http.StatusOK && called != 1 || tc.want != http.StatusOK && called != 0 {
				t.Errorf("act called %d times", called)
			}
			if tc.want != http.StatusOK && strings.Contains(w.Body.String(), testSlackSecret) {
				t.Errorf("response carries the secret")
			}
		})
	}
}

func TestSlackButtonOpensTOTPModalAndRecordsNothing(t *testing.T) {
	for _, tc := range []struct{ actionID, decision, title string }{
		{"df_approve", "approve", "Approve proposal"},
		{"df_deny", "deny", "Deny proposal"},
	} {
		t.Run(tc.decision, func(t *testing.T) {
			f := newFakeSlack(t)
			rec := &recordingAct{}
			h := newTestSlack(t, f).InteractionHandler(rec.act)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, signedSlackRequest(t, payloadBody(buttonPayload(tc.actionID, testProposalID)), testSlackSecret, time.Now()))
			if w.Code != http.StatusOK || w.Body.Len() != 0 {
				t.Fatalf("status %d body %q, want 200 and empty", w.Code, w.Body)
			}
			if n := len(rec.Calls()); n != 0 {
				t.Fatalf("a button press called act %d times: a vote must never count without TOTP", n)
			}
			views := f.Views()
			if len(views) != 1 {
				t.Fatalf("got %d views.open calls, want 1", len(views))
			}
			if f.authHdrs[0] != "Bearer "+testSlackToken {
				t.Errorf("views.open not authorised with the bot token")
			}
			v := views[0]
			if v["trigger_id"] != "trig.123" {
				t.Errorf("trigger_id = %v", v["trigger_id"])
			}
			if got := jsonPath(t, v, "view", "private_metadata"); got != tc.decision+"|"+testProposalID {
				t.Errorf("private_metadata = %v", got)
			}
			title, _ := jsonPath(t, v, "view", "title", "text").(string)
			if title != tc.title || len(title) > 24 {
				t.Errorf("title = %q (Slack's limit is 24 characters)", title)
			}
			if jsonPath(t, v, "view", "type") != "modal" || jsonPath(t, v, "view", "callback_id") != "df_vote" {
				t.Errorf("view = %v", v["view"])
			}
			if body, _ := jsonPath(t, v, "view", "blocks", 0, "text", "text").(string); !strings.Contains(body, testProposalID) {
				t.Errorf("modal body does not name the proposal: %q", body)
			}
			in := jsonPath(t, v, "view", "blocks", 1)
			if jsonPath(t, in, "type") != "input" || jsonPath(t, in, "block_id") != "totp" ||
				jsonPath(t, in, "element", "type") != "plain_text_input" || jsonPath(t, in, "element", "action_id") != "code" ||
				jsonPath(t, in, "element", "max_length") != float64(6) {
				t.Errorf("TOTP input block = %v", in)
			}
			reason := jsonPath(t, v, "view", "blocks", 2)
			if jsonPath(t, reason, "block_id") != "reason" || jsonPath(t, reason, "optional") != true {
				t.Errorf("reason block = %v", reason)
			}
		})
	}
}

func TestSlackButtonIgnoresOtherActions(t *testing.T) {
	f := newFakeSlack(t)
	rec := &recordingAct{}
	h := newTestSlack(t, f).InteractionHandler(rec.act)
	for _, p := range []string{
		buttonPayload("df_open", ""),
		buttonPayload("df_approve", "bad|id"),
		`{"type":"shortcut","trigger_id":"t"}`,
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, signedSlackRequest(t, payloadBody(p), testSlackSecret, time.Now()))
		if w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Errorf("%s: status %d body %q", p, w.Code, w.Body)
		}
	}
	if len(f.Views()) != 0 || len(rec.Calls()) != 0 {
		t.Errorf("views.open %d, act %d; want none", len(f.Views()), len(rec.Calls()))
	}
}

func TestSlackSubmissionCallsActWithTOTP(t *testing.T) {
	f := newFakeSlack(t)
	rec := &recordingAct{reply: "Approved: 1 of 2 approvals."}
	h := newTestSlack(t, f).InteractionHandler(rec.act)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, signedSlackRequest(t, payloadBody(submissionPayload("deny|"+testProposalID, " 123456 ", "risky")), testSlackSecret, time.Now()))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	calls := rec.Calls()
	want := Action{Channel: "slack", ChannelUser: "U42", ProposalID: testProposalID, Decision: "deny", TOTP: "123456", Reason: "risky"}
	if len(calls) != 1 || calls[0] != want {
		t.Fatalf("act calls = %+v, want [%+v]", calls, want)
	}
	var resp map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("response %q (%v)", w.Body, err)
	}
	if resp["response_action"] != "update" || !strings.Contains(w.Body.String(), "Approved: 1 of 2 approvals.") {
		t.Errorf("response = %s", w.Body)
	}
}

func TestSlackSubmissionShowsActErrorInModal(t *testing.T) {
	f := newFakeSlack(t)
	rec := &recordingAct{err: errors.New("invalid or reused code")}
	h := newTestSlack(t, f).InteractionHandler(rec.act)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, signedSlackRequest(t, payloadBody(submissionPayload("approve|"+testProposalID, "000000", "")), testSlackSecret, time.Now()))
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	var resp struct {
		ResponseAction string            `json:"response_action"`
		Errors         map[string]string `json:"errors"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.ResponseAction != "errors" || resp.Errors["totp"] != "invalid or reused code" {
		t.Errorf("response = %s", w.Body)
	}
	if len(rec.Calls()) != 1 {
		t.Errorf("act called %d times", len(rec.Calls()))
	}
}

func TestSlackSubmissionWithoutValidTOTPNeverCallsAct(t *testing.T) {
	f := newFakeSlack(t)
	rec := &recordingAct{}
	h := newTestSlack(t, f).InteractionHandler(rec.act)
	for _, p := range []string{
		submissionPayload("approve|"+testProposalID, "", ""),
		submissionPayload("approve|"+testProposalID, "12345", ""),
		submissionPayload("approve|"+testProposalID, "12345a", ""),
		submissionPayload("approve|"+testProposalID, "1234567", ""),
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, signedSlackRequest(t, payloadBody(p), testSlackSecret, time.Now()))
		if !strings.Contains(w.Body.String(), `"response_action":"errors"`) || !strings.Contains(w.Body.String(), `"totp"`) {
			t.Errorf("%s: response %s", p, w.Body)
		}
	}
	for _, p := range []string{
		submissionPayload("maybe|"+testProposalID, "123456", ""),
		submissionPayload("approve", "123456", ""),
		strings.Replace(submissionPayload("approve|"+testProposalID, "123456", ""), "df_vote", "other", 1),
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, signedSlackRequest(t, payloadBody(p), testSlackSecret, time.Now()))
		if w.Code != http.StatusOK || w.Body.Len() != 0 {
			t.Errorf("%s: status %d body %q", p, w.Code, w.Body)
		}
	}
	if n := len(rec.Calls()); n != 0 {
		t.Errorf("act called %d times", n)
	}
}

func TestNewSlackValidates(t *testing.T) {
	for _, cfg := range []SlackConfig{
		{ChannelID: "C", SigningSecret: "s"},
		{Token: "t", SigningSecret: "s"},
		{Token: "t", ChannelID: "C"},
		{Token: "t", ChannelID: "C", SigningSecret: "s", APIURL: "ftp://x"},
	} {
		if _, err := NewSlack(cfg); err == nil {
			t.Errorf("NewSlack(%+v) accepted", cfg)
		}
	}
}

func TestSlackButtonViewsOpenFailureIsReported(t *testing.T) {
	f := newFakeSlack(t)
	f.failWith = "expired_trigger_id"
	rec := &recordingAct{}
	h := newTestSlack(t, f).InteractionHandler(rec.act)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, signedSlackRequest(t, payloadBody(buttonPayload("df_approve", testProposalID)), testSlackSecret, time.Now()))
	if w.Code != http.StatusBadGateway {
		t.Errorf("status %d, want 502 so Slack tells the user", w.Code)
	}
	if strings.Contains(w.Body.String(), "expired_trigger_id") || strings.Contains(w.Body.String(), testSlackToken) {
		t.Errorf("response leaks detail: %q", w.Body)
	}
	if len(f.Views()) != 1 || len(rec.Calls()) != 0 {
		t.Errorf("views.open %d, act %d", len(f.Views()), len(rec.Calls()))
	}
}
