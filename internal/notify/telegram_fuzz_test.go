package notify

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzTelegramUpdate feeds the webhook arbitrary bodies with the right secret: it
// must never panic, and act may only see a well-formed Action.
func FuzzTelegramUpdate(f *testing.F) {
	prompt := "Reply to this message with your 6-digit TOTP code to approve proposal " + testProposalID + "."
	f.Add(callbackUpdate(1, "a:"+testProposalID))
	f.Add(callbackUpdate(2, "d:"))
	f.Add(replyUpdate(3, prompt, testTelegramBotID, "123456"))
	f.Add(replyUpdate(4, prompt, testTelegramBotID, "12345x"))
	f.Add(`{"update_id":5,"callback_query":{"id":"q","message":{"date":0}}}`)
	f.Add(`{"update_id":6,"message":{"reply_to_message":{}}}`)
	f.Add(`{"update_id":7,"message":{"reply_to_message":{"from":null}}}`)
	f.Add(`null`)
	f.Add(`[]`)

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/sendMessage") {
			_, _ = io.WriteString(w, `{"ok":true,"result":{"message_id":1,"date":1,"chat":{"id":1,"type":"private"}}}`)
			return
		}
		_, _ = io.WriteString(w, `{"ok":true,"result":true}`)
	}))
	f.Cleanup(api.Close)
	tg := newTestTelegram(f, api.URL)
	h := tg.WebhookHandler(func(_ context.Context, a Action) (string, error) {
		if a.Channel != "telegram" || !validTOTP(a.TOTP) || !validProposalID(a.ProposalID) || a.ChannelUser == "" ||
			(a.Decision != DecisionApprove && a.Decision != DecisionDeny) {
			panic("act called with an invalid action")
		}
		return "ok", nil
	})

	f.Fuzz(func(t *testing.T, body string) {
		// Every input is a new update to the handler: forget the ids seen.
		tg.seen = updateSet{}
		w := tgPost(t, h, testTelegramSecret, body)
		if w.Code == http.StatusUnauthorized {
			t.Fatalf("the right secret was rejected")
		}
	})
}
