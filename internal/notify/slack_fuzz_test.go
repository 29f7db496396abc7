package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"
)

// FuzzSlackInteraction feeds the interaction handler arbitrary bodies with a valid
// signature: it must never panic, and must call act only for a view_submission of
// the vote modal that carries a 6-digit code.
func FuzzSlackInteraction(f *testing.F) {
	for _, p := range []string{
		buttonPayload("df_approve", testProposalID),
		buttonPayload("df_deny", "x"),
		submissionPayload("approve|"+testProposalID, "123456", "why"),
		submissionPayload("deny|"+testProposalID, "12345", ""),
		`{"type":"view_submission","view":{"callback_id":"df_vote","private_metadata":"approve|p","state":null}}`,
		`{"type":"block_actions","actions":[null]}`,
		`{"type":"view_closed"}`,
		`[]`,
	} {
		f.Add(payloadBody(p))
	}
	f.Add("payload=%7B")
	f.Add("")

	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	f.Cleanup(api.Close)
	s, err := NewSlack(SlackConfig{Token: testSlackToken, ChannelID: "C1", SigningSecret: testSlackSecret, APIURL: api.URL})
	if err != nil {
		f.Fatal(err)
	}
	var calls atomic.Int64
	h := s.InteractionHandler(func(_ context.Context, a Action) (string, error) {
		calls.Add(1)
		if !validTOTP(a.TOTP) || a.ChannelUser == "" || !validProposalID(a.ProposalID) ||
			(a.Decision != DecisionApprove && a.Decision != DecisionDeny) {
			panic("act called with an invalid action")
		}
		return "ok", nil
	})

	f.Fuzz(func(t *testing.T, body string) {
		before := calls.Load()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, signedSlackRequest(t, body, testSlackSecret, time.Now()))
		if w.Code == http.StatusUnauthorized {
			t.Fatalf("a correctly signed body was rejected")
		}
		if calls.Load() == before {
			return
		}
		// act was called: the body must have been a vote modal's submission with a code.
		form, _ := url.ParseQuery(body)
		var cb slack.InteractionCallback
		if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
			t.Fatalf("act called for an undecodable payload")
		}
		if cb.Type != slack.InteractionTypeViewSubmission || cb.View.CallbackID != slackModalCallback || cb.View.State == nil ||
			!validTOTP(strings.TrimSpace(cb.View.State.Values[slackTOTPBlock][slackTOTPAction].Value)) {
			t.Fatalf("act called for %q", body)
		}
	})
}
