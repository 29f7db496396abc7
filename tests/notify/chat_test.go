package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

const (
	nfSlackChannel = "C0NOTIFYE2E"
	nfSlackUser    = "U0MANAGER"  // mapped to nfManager in hil.chat_users
	nfSlackStray   = "U0STRANGER" // mapped to nobody
	nfTelegramChat = int64(-100777)
	nfTelegramUser = int64(5151) // mapped to nfSRE
	nfTelegramBot  = int64(987654321)
	nfManager      = "mgr-dana"
	nfSRE          = "sre-eli"
)

// nfChatCall is one recorded API call of a fake chat server.
type nfChatCall struct {
	Method string
	Fields map[string]string // form fields (Slack chat.postMessage, Telegram)
	JSON   map[string]any    // JSON body (Slack views.open)
	At     time.Time
}

// nfChatFake records the calls a fake chat API receives.
type nfChatFake struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []nfChatCall
}

func (f *nfChatFake) record(c nfChatCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c.At = time.Now()
	f.calls = append(f.calls, c)
}

// Calls are the recorded calls of method, in order.
func (f *nfChatFake) Calls(method string) []nfChatCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []nfChatCall
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// nfFakeSlack plays Slack's Web API: chat.postMessage (a form) and views.open (JSON),
// checking the bot token on each.
func nfFakeSlack(t *testing.T) *nfChatFake {
	f := &nfChatFake{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		method := strings.TrimPrefix(r.URL.Path, "/")
		c := nfChatCall{Method: method, Fields: map[string]string{}}
		switch method {
		case "chat.postMessage":
			v, err := url.ParseQuery(string(body))
			assert.NoError(t, err, "chat.postMessage: not a form")
			for k := range v {
				c.Fields[k] = v.Get(k)
			}
			tok := v.Get("token")
			if tok == "" {
				tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
			}
			assert.Equal(t, nfSlackToken, tok, "chat.postMessage: the bot token")
		case "views.open":
			assert.NoError(t, json.Unmarshal(body, &c.JSON), "views.open: not JSON: %s", body)
			assert.Equal(t, "Bearer "+nfSlackToken, r.Header.Get("Authorization"), "views.open: the bot token")
		default:
			t.Errorf("fake Slack: unexpected call %s", r.URL.Path)
		}
		f.record(c)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true,"channel":"`+nfSlackChannel+`","ts":"1700000000.000100","view":{"id":"V1"}}`)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// nfFakeTelegram plays the Bot API (sendMessage, answerCallbackQuery) under
// /bot<token>/.
func nfFakeTelegram(t *testing.T) *nfChatFake {
	f := &nfChatFake{}
	var nextID int64 = 500
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefix := "/bot" + nfTelegramToken + "/"
		if !strings.HasPrefix(r.URL.Path, prefix) {
			t.Errorf("fake Telegram: unexpected path (token?) %q", r.URL.Path)
			http.NotFound(w, r)
			return
		}
		c := nfChatCall{Method: strings.TrimPrefix(r.URL.Path, prefix), Fields: map[string]string{}}
		if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
			t.Errorf("fake Telegram %s: %v", c.Method, err)
		}
		if r.MultipartForm != nil {
			for k, v := range r.MultipartForm.Value {
				c.Fields[k] = v[0]
			}
		}
		f.record(c)
		w.Header().Set("Content-Type", "application/json")
		switch c.Method {
		case "sendMessage":
			f.mu.Lock()
			nextID++
			id := nextID
			f.mu.Unlock()
			fmt.Fprintf(w, `{"ok":true,"result":{"message_id":%d,"date":1700000000,"chat":{"id":%s,"type":"group"},"text":"x"}}`, id, c.Fields["chat_id"])
		case "answerCallbackQuery":
			_, _ = io.WriteString(w, `{"ok":true,"result":true}`)
		default:
			t.Errorf("fake Telegram: unexpected method %s", c.Method)
			_, _ = io.WriteString(w, `{"ok":true,"result":true}`)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// nfSlackPost is one chat.postMessage, decoded.
type nfSlackPost struct {
	Channel  string
	Text     string
	EventID  string
	Buttons  map[string]string // action_id -> value
	LinkURL  string
	Markdown string
}

func nfDecodeSlackPost(t *testing.T, c nfChatCall) nfSlackPost {
	t.Helper()
	p := nfSlackPost{Channel: c.Fields["channel"], Text: c.Fields["text"], Buttons: map[string]string{}}
	var meta struct {
		EventType    string         `json:"event_type"`
		EventPayload map[string]any `json:"event_payload"`
	}
	require.NoError(t, json.Unmarshal([]byte(c.Fields["metadata"]), &meta), "metadata: %q", c.Fields["metadata"])
	require.Equal(t, "decision_fabric_notification", meta.EventType)
	p.EventID, _ = meta.EventPayload["event_id"].(string)
	var blocks []struct {
		Type string `json:"type"`
		Text struct {
			Text string `json:"text"`
		} `json:"text"`
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
			URL      string `json:"url"`
		} `json:"elements"`
	}
	require.NoError(t, json.Unmarshal([]byte(c.Fields["blocks"]), &blocks), "blocks: %q", c.Fields["blocks"])
	for _, b := range blocks {
		switch b.Type {
		case "section":
			p.Markdown += b.Text.Text
		case "actions":
			for _, e := range b.Elements {
				if e.URL != "" {
					p.LinkURL = e.URL
				} else {
					p.Buttons[e.ActionID] = e.Value
				}
			}
		}
	}
	return p
}

// nfTelegramSend is one sendMessage, decoded.
type nfTelegramSend struct {
	ChatID   string
	Text     string
	Callback []string // the inline buttons' callback data
	LinkURL  string
	Force    bool // a ForceReply prompt
}

func nfDecodeTelegram(t *testing.T, c nfChatCall) nfTelegramSend {
	t.Helper()
	s := nfTelegramSend{ChatID: c.Fields["chat_id"], Text: c.Fields["text"]}
	if raw := c.Fields["reply_markup"]; raw != "" {
		var mk struct {
			InlineKeyboard [][]struct {
				CallbackData string `json:"callback_data"`
				URL          string `json:"url"`
			} `json:"inline_keyboard"`
			ForceReply bool `json:"force_reply"`
		}
		require.NoError(t, json.Unmarshal([]byte(raw), &mk), "reply_markup: %q", raw)
		for _, row := range mk.InlineKeyboard {
			for _, b := range row {
				if b.URL != "" {
					s.LinkURL = b.URL
				} else {
					s.Callback = append(s.Callback, b.CallbackData)
				}
			}
		}
		s.Force = mk.ForceReply
	}
	return s
}

// nfSlackCallback posts an interactivity payload to the gateway signed with secret.
func nfSlackCallback(t *testing.T, f *fabrictest.Fabric, secret, payload string) fabrictest.Response {
	t.Helper()
	body := url.Values{"payload": {payload}}.Encode()
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	_, _ = io.WriteString(mac, "v0:"+stamp+":"+body)
	return f.Do(t, http.MethodPost, fabric.HIL, "/hil/slack/interactions", "", body,
		"Content-Type: application/x-www-form-urlencoded",
		"X-Slack-Request-Timestamp: "+stamp,
		"X-Slack-Signature: v0="+hex.EncodeToString(mac.Sum(nil)))
}

func nfSlackButton(user, actionID, value string) string {
	return fmt.Sprintf(`{"type":"block_actions","trigger_id":"trig.%s","user":{"id":%q},`+
		`"actions":[{"type":"button","action_id":%q,"block_id":"df_actions","value":%q}]}`, user, user, actionID, value)
}

func nfSlackSubmission(user, meta, code string) string {
	return fmt.Sprintf(`{"type":"view_submission","user":{"id":%q},"view":{"id":"V1","callback_id":"df_vote",`+
		`"private_metadata":%q,"state":{"values":{"totp":{"code":{"type":"plain_text_input","value":%q}},`+
		`"reason":{"text":{"type":"plain_text_input","value":"looked at the diff"}}}}}}`, user, meta, code)
}

// nfTelegramUpdate posts an update to the gateway's webhook with the secret header.
func nfTelegramUpdate(t *testing.T, f *fabrictest.Fabric, secret, update string) fabrictest.Response {
	t.Helper()
	return f.Do(t, http.MethodPost, fabric.HIL, "/hil/telegram/webhook", "", update,
		"Content-Type: application/json", "X-Telegram-Bot-Api-Secret-Token: "+secret)
}

// TestSlackAndTelegramPayloads: with channels [slack, telegram] against local servers
// playing Slack's Web API and Telegram's Bot API, a high-impact proposal's request is
// posted to Slack (channel, text, Approve/Deny buttons carrying the proposal id, a
// link button, the event id in the message metadata), its reminder to Slack and its
// escalation to Telegram (chat id, inline a:/d: buttons). Then the chat votes: a
// Slack button press (signed with the signing secret) opens the TOTP modal
// (views.open) and records nothing; a badly signed one is refused; a submission with
// a wrong code records nothing; the mapped manager's submission with their code
// records the vote with channel "slack". A Telegram button press asks for the code in
// a private chat and answers the callback, recording nothing; the mapped sre's reply
// with their code records the second vote with channel "telegram" and approves the
// proposal, which is announced on Slack.
func TestSlackAndTelegramPayloads(t *testing.T) {
	t.Parallel()
	nfEachStore(t, func(t *testing.T, st fabrictest.Store) {
		sl, tg := nfFakeSlack(t), nfFakeTelegram(t)
		f := nfStart(t, st, "8s", "7s", func(c *config.Config) {
			c.HIL.Channels = []string{"slack", "telegram"}
			c.HIL.Slack = config.Slack{ChannelID: nfSlackChannel, TokenEnv: nfSlackTokenEnv, SigningSecretEnv: nfSlackSecretEnv, APIURL: sl.srv.URL + "/"}
			c.HIL.Telegram = config.Telegram{ChatID: nfTelegramChat, TokenEnv: nfTelegramTokenEnv, WebhookSecretEnv: nfTelegramHookEnv, ServerURL: sl.srv.URL}
			c.HIL.Telegram.ServerURL = tg.srv.URL
			c.HIL.ChatUsers = map[string]config.ChatUser{
				"slack:" + nfSlackUser:                              {Subject: nfManager, Tenant: "t1", Roles: []string{auth.RoleApprover}, Groups: []string{"manager"}},
				"telegram:" + strconv.FormatInt(nfTelegramUser, 10): {Subject: nfSRE, Tenant: "t1", Roles: []string{auth.RoleApprover}, Groups: []string{"sre"}},
			}
		})
		mgrSecret := nfEnrol(t, f, nfManager, "t1", "manager")
		sreSecret := nfEnrol(t, f, nfSRE, "t1", "sre")
		tok := f.TokenWithGroups(t, "agent-chat", "t1", nil, auth.RoleProposer)
		p := nfSubmit(t, f, tok, `{"action":"scale","target":"svc-chat","regions":["eu-west","us-east"],"parameters":{"replicas":5}}`)
		nfAwait(t, f, tok, p.ID, "PROPOSAL_STATUS_PENDING_APPROVAL")
		link := nfLink(f, p.ID)

		// The request on Slack, then the reminder on Slack and the escalation on Telegram.
		require.Eventually(t, func() bool { return len(sl.Calls("chat.postMessage")) >= 2 && len(tg.Calls("sendMessage")) >= 1 },
			15*time.Second, 50*time.Millisecond, "request and reminder on Slack, escalation on Telegram")
		posts := sl.Calls("chat.postMessage")
		for i, kind := range []string{"request", "reminder"} {
			sp := nfDecodeSlackPost(t, posts[i])
			require.Equal(t, nfSlackChannel, sp.Channel)
			require.Equal(t, p.ID+"/"+kind, sp.EventID, "post %d", i)
			require.Equal(t, map[string]string{"df_approve": p.ID, "df_deny": p.ID}, sp.Buttons)
			require.Equal(t, link, sp.LinkURL)
			require.Contains(t, sp.Text, p.ID)
			for _, s := range []string{"*Proposal:* " + p.ID, "*Tenant:* t1", "*Impact:* high", "*Summary:* scale svc-chat in eu-west, us-east", "*Approvals needed:* 2"} {
				require.Contains(t, sp.Markdown, s)
			}
			require.NotContains(t, sp.Markdown, "agent-chat", "the proposer is not in a notification")
		}
		require.Contains(t, nfDecodeSlackPost(t, posts[1]).Markdown, "Reminder")
		require.True(t, posts[1].At.Sub(posts[0].At) > 500*time.Millisecond, "the reminder waits for remind_at")
		esc := tg.Calls("sendMessage")
		require.Len(t, esc, 1, "only the escalation goes to Telegram")
		ts := nfDecodeTelegram(t, esc[0])
		require.Equal(t, strconv.FormatInt(nfTelegramChat, 10), ts.ChatID)
		require.Equal(t, []string{"a:" + p.ID, "d:" + p.ID}, ts.Callback)
		require.Equal(t, link, ts.LinkURL)
		require.True(t, strings.HasPrefix(ts.Text, "Escalation: approval still needed"), ts.Text)
		require.Contains(t, ts.Text, "Proposal: "+p.ID)
		require.Contains(t, ts.Text, "Summary: scale svc-chat in eu-west, us-east")

		noVotes := func(msg string) {
			t.Helper()
			got := nfGet(t, f, tok, p.ID)
			require.Empty(t, got.Approvers, msg)
			require.Empty(t, nfVotes(t, f, p.ID), msg)
			require.Equal(t, "PROPOSAL_STATUS_PENDING_APPROVAL", got.Status, msg)
		}

		// Slack: a badly signed press is refused; a press opens the modal and records nothing.
		r := nfSlackCallback(t, f, "not-the-secret", nfSlackButton(nfSlackUser, "df_approve", p.ID))
		require.Equal(t, http.StatusUnauthorized, r.Status, string(r.Body))
		require.Empty(t, sl.Calls("views.open"))
		r = nfSlackCallback(t, f, nfSlackSecret, nfSlackButton(nfSlackUser, "df_approve", p.ID))
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		views := sl.Calls("views.open")
		require.Len(t, views, 1, "the press opens the TOTP modal")
		require.Equal(t, "trig."+nfSlackUser, views[0].JSON["trigger_id"])
		view, _ := views[0].JSON["view"].(map[string]any)
		require.Equal(t, "df_vote", view["callback_id"])
		require.Equal(t, "approve|"+p.ID, view["private_metadata"])
		noVotes("a button press alone records no vote")

		// A wrong code, and an unmapped Slack user, record nothing.
		wrong := "000000"
		if wrong == nfCode(t, mgrSecret, time.Now()) {
			wrong = "111111"
		}
		r = nfSlackCallback(t, f, nfSlackSecret, nfSlackSubmission(nfSlackUser, "approve|"+p.ID, wrong))
		require.Equal(t, http.StatusOK, r.Status)
		require.Contains(t, string(r.Body), `"response_action":"errors"`, string(r.Body))
		r = nfSlackCallback(t, f, nfSlackSecret, nfSlackSubmission(nfSlackStray, "approve|"+p.ID, nfCode(t, mgrSecret, time.Now())))
		require.Contains(t, string(r.Body), `"response_action":"errors"`, string(r.Body))
		require.Contains(t, string(r.Body), "not linked")
		noVotes("a wrong code or an unmapped user records no vote")

		// The manager's code: the vote counts, from Slack.
		r = nfSlackCallback(t, f, nfSlackSecret, nfSlackSubmission(nfSlackUser, "approve|"+p.ID, nfCode(t, mgrSecret, time.Now())))
		require.Equal(t, http.StatusOK, r.Status)
		require.Contains(t, string(r.Body), `"response_action":"update"`, string(r.Body))
		require.Contains(t, string(r.Body), "Recorded")
		got := nfGet(t, f, tok, p.ID)
		require.Equal(t, []string{nfManager}, got.Approvers)
		votes := nfAwaitVotes(t, f, p.ID, 1)
		require.Equal(t, nfManager, votes[0]["approver"])
		require.Equal(t, "slack", votes[0]["channel"], "the vote came from Slack")
		require.Equal(t, true, votes[0]["mfa_verified"])
		require.Equal(t, "totp", votes[0]["mfa_method"])
		require.Equal(t, "PROPOSAL_STATUS_PENDING_APPROVAL", got.Status, "a manager without an sre is not enough")

		// Telegram: the press asks for the code in the private chat, records nothing.
		tgUser := fmt.Sprintf(`{"id":%d,"is_bot":false,"first_name":"Eli"}`, nfTelegramUser)
		r = nfTelegramUpdate(t, f, "wrong-secret", `{"update_id":1}`)
		require.Equal(t, http.StatusUnauthorized, r.Status)
		r = nfTelegramUpdate(t, f, nfTelegramHook, fmt.Sprintf(
			`{"update_id":10,"callback_query":{"id":"cq-1","from":%s,"chat_instance":"ci","data":"a:%s"}}`, tgUser, p.ID))
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		sends := tg.Calls("sendMessage")
		require.Len(t, sends, 2, "the escalation, then the code prompt")
		prompt := nfDecodeTelegram(t, sends[1])
		require.Equal(t, strconv.FormatInt(nfTelegramUser, 10), prompt.ChatID, "the prompt goes to the private chat")
		require.True(t, prompt.Force)
		require.Equal(t, "Reply to this message with your 6-digit TOTP code to approve proposal "+p.ID+".", prompt.Text)
		answers := tg.Calls("answerCallbackQuery")
		require.Len(t, answers, 1)
		require.Equal(t, "cq-1", answers[0].Fields["callback_query_id"])
		got = nfGet(t, f, tok, p.ID)
		require.Equal(t, []string{nfManager}, got.Approvers, "a Telegram press alone records no vote")

		reply := fmt.Sprintf(`{"update_id":11,"message":{"message_id":77,"date":1700000000,"from":%s,`+
			`"chat":{"id":%d,"type":"private"},"text":%q,"reply_to_message":{"message_id":501,"date":1700000000,`+
			`"from":{"id":%d,"is_bot":true,"first_name":"bot"},"chat":{"id":%d,"type":"private"},"text":%q}}}`,
			tgUser, nfTelegramUser, nfCode(t, sreSecret, time.Now()), nfTelegramBot, nfTelegramUser, prompt.Text)
		r = nfTelegramUpdate(t, f, nfTelegramHook, reply)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		got = nfGet(t, f, tok, p.ID)
		require.ElementsMatch(t, []string{nfManager, nfSRE}, got.Approvers)
		byChannel := map[any]any{}
		for _, v := range nfAwaitVotes(t, f, p.ID, 2) {
			byChannel[v["channel"]] = v["approver"]
		}
		require.Equal(t, map[any]any{"slack": nfManager, "telegram": nfSRE}, byChannel)
		require.Equal(t, "PROPOSAL_STATUS_APPROVED", got.Status)
		sends = tg.Calls("sendMessage")
		require.Len(t, sends, 3)
		require.Contains(t, nfDecodeTelegram(t, sends[2]).Text, "Recorded")

		// The outcome is announced on the first channel, without buttons.
		require.Eventually(t, func() bool { return len(sl.Calls("chat.postMessage")) >= 3 }, 10*time.Second, 50*time.Millisecond)
		res := nfDecodeSlackPost(t, sl.Calls("chat.postMessage")[2])
		require.Equal(t, p.ID+"/resolved", res.EventID)
		require.Empty(t, res.Buttons)
		require.Contains(t, res.Markdown, "*Outcome:* APPROVED")
		time.Sleep(time.Second)
		require.Len(t, sl.Calls("chat.postMessage"), 3, "request, reminder, resolved: nothing more on Slack")
		require.Len(t, tg.Calls("sendMessage"), 3, "nothing more on Telegram")
	})
}

// nfVotes are the approval.vote entries of the proposal's audit trail (their payloads:
// approver, decision, channel, mfa_method, mfa_verified…).
//
// GET /proposals/{id} would be the natural place to read them, but its "approvals"
// field is always empty (the coordinator's toProto does not copy the decision
// record's approvals, approval_deadline or approval_standing; reported to the lead),
// so the votes are read from the audit trail, where each vote is written in the
// vote's transaction.
func nfVotes(t *testing.T, f *fabrictest.Fabric, id string) []map[string]any {
	t.Helper()
	r := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+id, f.Token(t, "t1", auth.RoleAuditor), "")
	if r.Status == http.StatusNotFound {
		return nil
	}
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var doc any
	require.NoError(t, json.Unmarshal(r.Body, &doc))
	var out []map[string]any
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["approver"]; ok {
				if _, ok := x["channel"]; ok {
					out = append(out, x)
					return
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case string:
			if strings.HasPrefix(x, "{") {
				var inner any
				if json.Unmarshal([]byte(x), &inner) == nil {
					walk(inner)
				}
			}
		}
	}
	walk(doc)
	return out
}

// nfAwaitVotes waits until the audit trail holds n votes of the proposal, and no more.
func nfAwaitVotes(t *testing.T, f *fabrictest.Fabric, id string, n int) []map[string]any {
	t.Helper()
	var votes []map[string]any
	require.Eventually(t, func() bool {
		votes = nfVotes(t, f, id)
		return len(votes) >= n
	}, 10*time.Second, 50*time.Millisecond, "%d votes audited", n)
	require.Len(t, votes, n, "%+v", votes)
	return votes
}
