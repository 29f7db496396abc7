package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
)

const (
	testTelegramToken  = "123456789:AAtest-token-do-not-log"
	testTelegramBotID  = 123456789
	testTelegramSecret = "webhook-secret_1"
	testTelegramChat   = int64(-1001234)
	testTelegramUser   = int64(4242)
)

// tgCall is one recorded Bot API call: its method and its form fields.
type tgCall struct {
	Method string
	Fields map[string]string
}

// fakeTelegram plays the Bot API: it records each call's method and fields and
// answers ok, or with the configured error.
type fakeTelegram struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	calls     []tgCall
	errCode   int    // Bot API error_code for every call (0 is ok)
	failOnly  string // when set, only this method fails
	httpCode  int    // plain HTTP status for every call, body not JSON
	nextMsgID int
}

func newFakeTelegram(t *testing.T) *fakeTelegram {
	t.Helper()
	f := &fakeTelegram{t: t, nextMsgID: 100}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTelegram) serve(w http.ResponseWriter, r *http.Request) {
	prefix := "/bot" + testTelegramToken + "/"
	if !strings.HasPrefix(r.URL.Path, prefix) {
		f.t.Errorf("unexpected path %s", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	method := strings.TrimPrefix(r.URL.Path, prefix)
	fields := map[string]string{}
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		f.t.Errorf("%s: %v", method, err)
	}
	if r.MultipartForm != nil {
		for k, v := range r.MultipartForm.Value {
			fields[k] = v[0]
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, tgCall{method, fields})
	errCode, failOnly, httpCode := f.errCode, f.failOnly, f.httpCode
	f.nextMsgID++
	id := f.nextMsgID
	f.mu.Unlock()
	if httpCode != 0 {
		http.Error(w, "<html>bad gateway</html>", httpCode)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if errCode != 0 && (failOnly == "" || failOnly == method) {
		w.WriteHeader(errCode)
		fmt.Fprintf(w, `{"ok":false,"error_code":%d,"description":"error %d","parameters":{"retry_after":1}}`, errCode, errCode)
		return
	}
	switch method {
	case "sendMessage":
		fmt.Fprintf(w, `{"ok":true,"result":{"message_id":%d,"date":1700000000,"chat":{"id":%s,"type":"private"},"text":"x"}}`, id, fields["chat_id"])
	default:
		_, _ = io.WriteString(w, `{"ok":true,"result":true}`)
	}
}

func (f *fakeTelegram) Calls() []tgCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]tgCall(nil), f.calls...)
}

func newTestTelegram(t testing.TB, serverURL string) *Telegram {
	t.Helper()
	tg, err := NewTelegram(TelegramConfig{Token: testTelegramToken, ChatID: testTelegramChat, WebhookSecret: testTelegramSecret, ServerURL: serverURL})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestTelegramSendMessageWithKeyboard(t *testing.T) {
	f := newFakeTelegram(t)
	m := testMessage()
	if err := newTestTelegram(t, f.srv.URL).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 1 || calls[0].Method != "sendMessage" {
		t.Fatalf("calls = %+v, want one sendMessage (and no getMe)", calls)
	}
	c := calls[0].Fields
	if c["chat_id"] != fmt.Sprint(testTelegramChat) {
		t.Errorf("chat_id = %q", c["chat_id"])
	}
	var keys []string
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if got := strings.Join(keys, ","); got != "chat_id,link_preview_options,reply_markup,text" {
		t.Errorf("sendMessage fields = %s", got)
	}
	if c["parse_mode"] != "" {
		t.Errorf("parse_mode = %q, want plain text", c["parse_mode"])
	}
	for _, want := range []string{"Approval requested", testProposalID, "tenant-a", "Impact: high", "Summary: scale <payments> & co in eu-west-1", "Approvals needed: 2", "Deadline: 2026-12-06 17:30:00 UTC"} {
		if !strings.Contains(c["text"], want) {
			t.Errorf("text lacks %q:\n%s", want, c["text"])
		}
	}
	var kb struct {
		InlineKeyboard [][]struct {
			Text         string `json:"text"`
			CallbackData string `json:"callback_data"`
			URL          string `json:"url"`
		} `json:"inline_keyboard"`
	}
	if err := json.Unmarshal([]byte(c["reply_markup"]), &kb); err != nil {
		t.Fatalf("reply_markup %q: %v", c["reply_markup"], err)
	}
	if len(kb.InlineKeyboard) != 2 || len(kb.InlineKeyboard[0]) != 2 || len(kb.InlineKeyboard[1]) != 1 {
		t.Fatalf("keyboard = %+v", kb)
	}
	a, d, l := kb.InlineKeyboard[0][0], kb.InlineKeyboard[0][1], kb.InlineKeyboard[1][0]
	if a.Text != "Approve" || a.CallbackData != "a:"+testProposalID || d.Text != "Deny" || d.CallbackData != "d:"+testProposalID || l.URL != m.Link {
		t.Errorf("buttons = %+v %+v %+v", a, d, l)
	}
	if len(a.CallbackData) > 64 {
		t.Errorf("callback data %d bytes, Telegram's limit is 64", len(a.CallbackData))
	}
}

func TestTelegramSendRejectsLongProposalID(t *testing.T) {
	f := newFakeTelegram(t)
	m := testMessage()
	m.ProposalID = strings.Repeat("p", 63)
	err := newTestTelegram(t, f.srv.URL).Send(context.Background(), m)
	var pe *PermanentError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if len(f.Calls()) != 0 {
		t.Errorf("sent anyway")
	}
}

func TestTelegramSendErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		errCode   int
		httpCode  int
		permanent bool
	}{
		{"400", 400, 0, true},
		{"401", 401, 0, true},
		{"403", 403, 0, true},
		{"429", 429, 0, false},
		{"500", 500, 0, false},
		{"502 html", 0, 502, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeTelegram(t)
			f.errCode, f.httpCode = tc.errCode, tc.httpCode
			err := newTestTelegram(t, f.srv.URL).Send(context.Background(), testMessage())
			if err == nil {
				t.Fatal("no error")
			}
			var pe *PermanentError
			if errors.As(err, &pe) != tc.permanent {
				t.Errorf("permanent = %v, want %v (%v)", !tc.permanent, tc.permanent, err)
			}
			if strings.Contains(err.Error(), testTelegramToken) {
				t.Errorf("error carries the token: %v", err)
			}
		})
	}
	t.Run("network", func(t *testing.T) {
		f := newFakeTelegram(t)
		tg := newTestTelegram(t, f.srv.URL)
		f.srv.Close()
		err := tg.Send(context.Background(), testMessage())
		var pe *PermanentError
		if err == nil || errors.As(err, &pe) {
			t.Fatalf("err = %v, want retryable", err)
		}
		if strings.Contains(err.Error(), testTelegramToken) || strings.Contains(err.Error(), "AAtest-token") {
			t.Errorf("error carries the token: %v", err)
		}
	})
}

func tgPost(t testing.TB, h http.Handler, secret, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/telegram/webhook", strings.NewReader(body))
	if secret != "" {
		r.Header.Set("X-Telegram-Bot-Api-Secret-Token", secret)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func callbackUpdate(updateID int, data string) string {
	return fmt.Sprintf(`{"update_id":%d,"callback_query":{"id":"cq%d","from":{"id":%d,"is_bot":false,"first_name":"A"},`+
		`"message":{"message_id":7,"date":1700000000,"chat":{"id":%d,"type":"supergroup"},"text":"Approval requested"},`+
		`"chat_instance":"ci","data":%q}}`, updateID, updateID, testTelegramUser, testTelegramChat, data)
}

func replyUpdate(updateID int, promptText string, promptFrom int64, text string) string {
	return fmt.Sprintf(`{"update_id":%d,"message":{"message_id":%d,"date":1700000001,`+
		`"from":{"id":%d,"is_bot":false,"first_name":"A"},"chat":{"id":%d,"type":"private"},"text":%q,`+
		`"reply_to_message":{"message_id":101,"date":1700000000,"from":{"id":%d,"is_bot":true,"first_name":"bot"},`+
		`"chat":{"id":%d,"type":"private"},"text":%q}}}`,
		updateID, 200+updateID, testTelegramUser, testTelegramUser, text, promptFrom, testTelegramUser, promptText)
}

func TestTelegramWebhookSecret(t *testing.T) {
	f := newFakeTelegram(t)
	rec := &recordingAct{}
	h := newTestTelegram(t, f.srv.URL).WebhookHandler(rec.act)
	prompt := "Reply to this message with your 6-digit TOTP code to approve proposal " + testProposalID + "."
	body := replyUpdate(1, prompt, testTelegramBotID, "123456")
	for _, secret := range []string{"", "wrong", testTelegramSecret + "x", strings.ToUpper(testTelegramSecret)} {
		if w := tgPost(t, h, secret, body); w.Code != http.StatusUnauthorized {
			t.Errorf("secret %q: status %d, want 401", secret, w.Code)
		}
	}
	if len(rec.Calls()) != 0 || len(f.Calls()) != 0 {
		t.Fatalf("unauthenticated update acted on: act %d, API calls %d", len(rec.Calls()), len(f.Calls()))
	}
	if w := tgPost(t, h, testTelegramSecret, `{"update_id":`); w.Code != http.StatusBadRequest {
		t.Errorf("malformed JSON: status %d", w.Code)
	}
	big := `{"update_id":1,"message":{"text":"` + strings.Repeat("x", 64<<10) + `"}}`
	if w := tgPost(t, h, testTelegramSecret, big); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: status %d", w.Code)
	}
	if w := tgPost(t, h, testTelegramSecret, body); w.Code != http.StatusOK || len(rec.Calls()) != 1 {
		t.Errorf("right secret: status %d, act calls %d", w.Code, len(rec.Calls()))
	}
}

func TestTelegramFullFlow(t *testing.T) {
	f := newFakeTelegram(t)
	rec := &recordingAct{reply: "Vote recorded: 1 of 2 approvals."}
	h := newTestTelegram(t, f.srv.URL).WebhookHandler(rec.act)

	// 1. The button press: a prompt, nothing recorded.
	if w := tgPost(t, h, testTelegramSecret, callbackUpdate(1, "d:"+testProposalID)); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	if len(rec.Calls()) != 0 {
		t.Fatal("a button press called act: a vote must never count without TOTP")
	}
	calls := f.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls = %+v, want sendMessage + answerCallbackQuery", calls)
	}
	var prompt tgCall
	var answered bool
	for _, c := range calls {
		switch c.Method {
		case "sendMessage":
			prompt = c
		case "answerCallbackQuery":
			answered = c.Fields["callback_query_id"] == "cq1"
		}
	}
	if !answered {
		t.Errorf("callback query not answered: %+v", calls)
	}
	wantPrompt := "Reply to this message with your 6-digit TOTP code to deny proposal " + testProposalID + "."
	if prompt.Fields["text"] != wantPrompt {
		t.Errorf("prompt = %q", prompt.Fields["text"])
	}
	if prompt.Fields["chat_id"] != fmt.Sprint(testTelegramUser) {
		t.Errorf("prompt sent to chat %q, want the user's private chat", prompt.Fields["chat_id"])
	}
	var fr struct {
		ForceReply bool `json:"force_reply"`
	}
	if err := json.Unmarshal([]byte(prompt.Fields["reply_markup"]), &fr); err != nil || !fr.ForceReply {
		t.Errorf("prompt reply_markup = %q", prompt.Fields["reply_markup"])
	}

	// 2. The code, in reply to the prompt: act called once.
	if w := tgPost(t, h, testTelegramSecret, replyUpdate(2, wantPrompt, testTelegramBotID, " 654321 ")); w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	want := Action{Channel: "telegram", ChannelUser: "4242", ProposalID: testProposalID, Decision: "deny", TOTP: "654321"}
	if got := rec.Calls(); len(got) != 1 || got[0] != want {
		t.Fatalf("act calls = %+v, want [%+v]", got, want)
	}
	calls = f.Calls()
	last := calls[len(calls)-1]
	if last.Method != "sendMessage" || last.Fields["chat_id"] != "4242" || last.Fields["text"] != rec.reply {
		t.Errorf("reply = %+v", last)
	}

	// 3. Telegram redelivers the same update: not acted on again.
	tgPost(t, h, testTelegramSecret, replyUpdate(2, wantPrompt, testTelegramBotID, "654321"))
	if n := len(rec.Calls()); n != 1 {
		t.Errorf("redelivered update called act again (%d calls)", n)
	}
}

func TestTelegramActErrorIsSentBack(t *testing.T) {
	f := newFakeTelegram(t)
	rec := &recordingAct{err: errors.New("invalid or reused code")}
	h := newTestTelegram(t, f.srv.URL).WebhookHandler(rec.act)
	prompt := "Reply to this message with your 6-digit TOTP code to approve proposal " + testProposalID + "."
	tgPost(t, h, testTelegramSecret, replyUpdate(1, prompt, testTelegramBotID, "123456"))
	if len(rec.Calls()) != 1 {
		t.Fatalf("act calls %d", len(rec.Calls()))
	}
	calls := f.Calls()
	if len(calls) != 1 || calls[0].Fields["text"] != "invalid or reused code" {
		t.Errorf("calls = %+v", calls)
	}
}

func TestTelegramIgnoresWhatIsNotACodeReply(t *testing.T) {
	f := newFakeTelegram(t)
	rec := &recordingAct{}
	h := newTestTelegram(t, f.srv.URL).WebhookHandler(rec.act)
	prompt := "Reply to this message with your 6-digit TOTP code to approve proposal " + testProposalID + "."
	bodies := []string{
		// A reply to a message from another bot.
		replyUpdate(1, prompt, 99999, "123456"),
		// A reply to a bot message that is not a prompt.
		replyUpdate(2, "Approval requested", testTelegramBotID, "123456"),
		// A prompt naming an id with a separator in it.
		replyUpdate(3, strings.Replace(prompt, testProposalID, "a|b", 1), testTelegramBotID, "123456"),
		// Not a reply.
		`{"update_id":4,"message":{"message_id":5,"date":1,"from":{"id":4242,"is_bot":false},"chat":{"id":4242,"type":"private"},"text":"123456"}}`,
		// In a group, not the private chat.
		strings.Replace(replyUpdate(5, prompt, testTelegramBotID, "123456"), `"chat":{"id":4242,"type":"private"},"text":"123456"`, `"chat":{"id":-100,"type":"group"},"text":"123456"`, 1),
		// A group whose id is the user's (cannot happen, but the chat type decides).
		strings.Replace(replyUpdate(10, prompt, testTelegramBotID, "123456"), `"chat":{"id":4242,"type":"private"},"text":"123456"`, `"chat":{"id":4242,"type":"group"},"text":"123456"`, 1),
		// Unknown button data.
		callbackUpdate(6, "x:"+testProposalID),
		callbackUpdate(7, "a:bad id"),
		`{"update_id":8}`,
	}
	for i, b := range bodies {
		if w := tgPost(t, h, testTelegramSecret, b); w.Code != http.StatusOK {
			t.Errorf("body %d: status %d", i, w.Code)
		}
	}
	if n := len(rec.Calls()); n != 0 {
		t.Errorf("act called %d times", n)
	}
	for _, c := range f.Calls() {
		if c.Method == "sendMessage" {
			t.Errorf("sent a message: %+v", c)
		}
	}

	// A reply that is not six digits gets a hint, and act is not called.
	tgPost(t, h, testTelegramSecret, replyUpdate(9, prompt, testTelegramBotID, "12345"))
	calls := f.Calls()
	if n := len(rec.Calls()); n != 0 || len(calls) == 0 || !strings.Contains(calls[len(calls)-1].Fields["text"], "6-digit") {
		t.Errorf("act calls %d, last API call %+v", n, calls)
	}
}

func TestTelegramPromptFailureAlertsUser(t *testing.T) {
	f := newFakeTelegram(t)
	f.errCode, f.failOnly = 403, "sendMessage"
	rec := &recordingAct{}
	h := newTestTelegram(t, f.srv.URL).WebhookHandler(rec.act)
	tgPost(t, h, testTelegramSecret, callbackUpdate(1, "a:"+testProposalID))
	calls := f.Calls()
	last := calls[len(calls)-1]
	if last.Method != "answerCallbackQuery" || last.Fields["show_alert"] != "true" || !strings.Contains(last.Fields["text"], "private chat") {
		t.Errorf("calls = %+v", calls)
	}
	if len(rec.Calls()) != 0 {
		t.Error("act called")
	}
}

func TestNewTelegramValidates(t *testing.T) {
	for _, cfg := range []TelegramConfig{
		{ChatID: 1, WebhookSecret: "s"},
		{Token: "1:x", WebhookSecret: "s"},
		{Token: "1:x", ChatID: 1},
		{Token: "1:x", ChatID: 1, WebhookSecret: "s", ServerURL: "not a url"},
		{Token: "1:x", ChatID: 1, WebhookSecret: "has space"},
		{Token: "1:x", ChatID: 1, WebhookSecret: strings.Repeat("s", 257)},
	} {
		if _, err := NewTelegram(cfg); err == nil {
			t.Errorf("NewTelegram(%+v) accepted", cfg)
		}
	}
}
