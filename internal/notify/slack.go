package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// Slack Block Kit identifiers the interaction handler recognises.
const (
	slackActionApprove  = "df_approve"
	slackActionDeny     = "df_deny"
	slackActionLink     = "df_open"
	slackModalCallback  = "df_vote"
	slackTOTPBlock      = "totp"
	slackTOTPAction     = "code"
	slackReasonBlock    = "reason"
	slackReasonAction   = "text"
	slackEventType      = "decision_fabric_notification"
	slackMaxReasonBytes = 500
)

// slackPermanentErrors are Slack Web API error codes that retrying cannot fix.
var slackPermanentErrors = map[string]bool{
	"invalid_auth":      true,
	"channel_not_found": true,
	"not_in_channel":    true,
	"account_inactive":  true,
	"not_authed":        true,
	"token_revoked":     true,
	"is_archived":       true,
}

// SlackConfig configures the Slack channel.
type SlackConfig struct {
	// Token is the bot token (xoxb-…). It is never logged nor put in an error.
	Token string
	// ChannelID is the conversation notifications are posted to.
	ChannelID string
	// SigningSecret verifies the interactivity requests Slack sends.
	SigningSecret string
	// APIURL overrides Slack's Web API base URL (tests, self-hosted proxies);
	// "" is Slack's own.
	APIURL string
}

// Slack posts approval notifications to a Slack channel with Approve/Deny buttons
// and handles the buttons: a press opens a modal that asks for the approver's TOTP
// code, and only the modal's submission is passed on as an Action.
type Slack struct {
	cfg    SlackConfig
	client *slack.Client
}

// NewSlack returns a Slack channel for cfg.
func NewSlack(cfg SlackConfig) (*Slack, error) {
	if cfg.Token == "" {
		return nil, errors.New("slack: token is required")
	}
	if cfg.ChannelID == "" {
		return nil, errors.New("slack: channel id is required")
	}
	if cfg.SigningSecret == "" {
		return nil, errors.New("slack: signing secret is required")
	}
	opts := []slack.Option{slack.OptionHTTPClient(&http.Client{Timeout: 15 * time.Second})}
	if cfg.APIURL != "" {
		u, err := url.Parse(cfg.APIURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("slack: api url must be an absolute http(s) URL")
		}
		api := cfg.APIURL
		if !strings.HasSuffix(api, "/") {
			api += "/"
		}
		opts = append(opts, slack.OptionAPIURL(api))
	}
	return &Slack{cfg: cfg, client: slack.New(cfg.Token, opts...)}, nil
}

// Name implements Channel.
func (s *Slack) Name() string { return "slack" }

// Send implements Channel: it posts m to the configured channel with
// chat.postMessage. The message carries m.EventID in its metadata, so a retry after
// a crash can be recognised.
func (s *Slack) Send(ctx context.Context, m Message) error {
	if votable(m) && !validProposalID(m.ProposalID) {
		return &PermanentError{Err: errors.New("slack: proposal id cannot be carried in a button")}
	}
	_, _, err := s.client.PostMessageContext(ctx, s.cfg.ChannelID,
		slack.MsgOptionText(slackFallbackText(m), true),
		slack.MsgOptionBlocks(slackBlocks(m)...),
		slack.MsgOptionMetadata(slack.SlackMetadata{
			EventType:    slackEventType,
			EventPayload: map[string]any{"event_id": m.EventID},
		}),
	)
	if err == nil {
		return nil
	}
	return s.classify("chat.postMessage", err)
}

// classify turns a slack-go error into one without secrets, permanent when
// retrying cannot help.
func (s *Slack) classify(method string, err error) error {
	var apiErr slack.SlackErrorResponse
	if errors.As(err, &apiErr) {
		e := fmt.Errorf("slack %s: %s", method, redactSecret(apiErr.Err, s.cfg.Token))
		if slackPermanentErrors[apiErr.Err] {
			return &PermanentError{Err: e}
		}
		return e
	}
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return fmt.Errorf("slack %s: rate limited, retry after %s", method, rl.RetryAfter)
	}
	return fmt.Errorf("slack %s: %s", method, redactSecret(redactSecret(err.Error(), s.cfg.Token), s.cfg.SigningSecret))
}

// slackEscape escapes the three characters Slack's mrkdwn treats as control
// characters, so a summary cannot inject a link or a mention.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackFallbackText is the notification text shown where blocks are not (push
// notifications, screen readers).
func slackFallbackText(m Message) string {
	return chatHeadline(m) + ": proposal " + m.ProposalID
}

// slackBlocks is the Block Kit layout of m: a section with the text, then the
// buttons.
func slackBlocks(m Message) []slack.Block {
	var b strings.Builder
	b.WriteString("*" + slackEscape(chatHeadline(m)) + "*")
	for _, l := range chatLines(m) {
		b.WriteString("\n*" + l.Label + ":* " + slackEscape(l.Value))
	}
	blocks := []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, b.String(), false, false), nil, nil),
	}
	var elems []slack.BlockElement
	if votable(m) {
		elems = append(elems,
			slack.NewButtonBlockElement(slackActionApprove, m.ProposalID,
				slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false)).WithStyle(slack.StylePrimary),
			slack.NewButtonBlockElement(slackActionDeny, m.ProposalID,
				slack.NewTextBlockObject(slack.PlainTextType, "Deny", false, false)).WithStyle(slack.StyleDanger),
		)
	}
	if m.Link != "" {
		elems = append(elems, slack.NewButtonBlockElement(slackActionLink, "",
			slack.NewTextBlockObject(slack.PlainTextType, "Open approval page", false, false)).WithURL(m.Link))
	}
	if len(elems) > 0 {
		blocks = append(blocks, slack.NewActionBlock("df_actions", elems...))
	}
	return blocks
}

// slackVoteModal is the modal a button press opens: it asks for the TOTP code and
// an optional reason. Slack limits a modal's title to 24 characters, so the
// proposal id is in the body.
func slackVoteModal(decision, proposalID string) slack.ModalViewRequest {
	title, submit := "Approve proposal", "Approve"
	if decision == DecisionDeny {
		title, submit = "Deny proposal", "Deny"
	}
	code := slack.NewPlainTextInputBlockElement(
		slack.NewTextBlockObject(slack.PlainTextType, "123456", false, false), slackTOTPAction).
		WithMinLength(6).WithMaxLength(6)
	reason := slack.NewPlainTextInputBlockElement(nil, slackReasonAction).
		WithMultiline(true).WithMaxLength(slackMaxReasonBytes)
	return slack.ModalViewRequest{
		Type:       slack.VTModal,
		CallbackID: slackModalCallback,
		Title:      slack.NewTextBlockObject(slack.PlainTextType, title, false, false),
		Submit:     slack.NewTextBlockObject(slack.PlainTextType, submit, false, false),
		Close:      slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType,
				fmt.Sprintf("%s proposal `%s`. Your vote counts only with a valid code from your authenticator app.",
					submit, proposalID),
				false, false), nil, nil),
			slack.NewInputBlock(slackTOTPBlock,
				slack.NewTextBlockObject(slack.PlainTextType, "6-digit TOTP code", false, false), nil, code),
			slack.NewInputBlock(slackReasonBlock,
				slack.NewTextBlockObject(slack.PlainTextType, "Reason (optional)", false, false), nil, reason).
				WithOptional(true),
		}},
		PrivateMetadata: decision + "|" + proposalID,
	}
}

// slackResultModal replaces the vote modal after a recorded vote, to show reply.
func slackResultModal(reply string) *slack.ModalViewRequest {
	if reply == "" {
		reply = "Your vote was recorded."
	}
	return &slack.ModalViewRequest{
		Type:  slack.VTModal,
		Title: slack.NewTextBlockObject(slack.PlainTextType, "Decision Fabric", false, false),
		Close: slack.NewTextBlockObject(slack.PlainTextType, "Close", false, false),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.PlainTextType, truncate(reply, 2000), false, false), nil, nil),
		}},
	}
}

// InteractionHandler returns the handler for Slack's interactivity requests (the
// app's Request URL). Every request must carry a valid Slack signature with a
// timestamp at most five minutes old, else 401. A press on Approve or Deny records
// nothing: it opens a modal asking for the TOTP code. The modal's submission calls
// act; act's error is shown in the modal under the code field, act's reply replaces
// the modal. Anything else is answered 200 with an empty body.
func (s *Slack) InteractionHandler(act ActionFunc) http.Handler {
	if act == nil {
		panic("notify: Slack.InteractionHandler needs an ActionFunc")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, ok := readChatBody(w, r)
		if !ok {
			return
		}
		sv, err := slack.NewSecretsVerifier(r.Header, s.cfg.SigningSecret)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if _, err := sv.Write(body); err != nil || sv.Ensure() != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var cb slack.InteractionCallback
		if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch cb.Type {
		case slack.InteractionTypeBlockActions:
			s.handleButton(w, r, &cb)
		case slack.InteractionTypeViewSubmission:
			s.handleSubmission(w, r, &cb, act)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
}

// handleButton opens the TOTP modal for an Approve or Deny press. It records
// nothing.
func (s *Slack) handleButton(w http.ResponseWriter, r *http.Request, cb *slack.InteractionCallback) {
	var decision, proposalID string
	for _, a := range cb.ActionCallback.BlockActions {
		if a == nil {
			continue
		}
		switch a.ActionID {
		case slackActionApprove:
			decision, proposalID = DecisionApprove, a.Value
		case slackActionDeny:
			decision, proposalID = DecisionDeny, a.Value
		default:
			continue
		}
		break
	}
	if decision == "" || !validProposalID(proposalID) || cb.TriggerID == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	// A trigger id expires three seconds after the press.
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if _, err := s.client.OpenViewContext(ctx, cb.TriggerID, slackVoteModal(decision, proposalID)); err != nil {
		// Slack shows the user that the app did not respond.
		http.Error(w, "could not open the dialog", http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// handleSubmission passes a submitted vote modal to act.
func (s *Slack) handleSubmission(w http.ResponseWriter, r *http.Request, cb *slack.InteractionCallback, act ActionFunc) {
	if cb.View.CallbackID != slackModalCallback {
		w.WriteHeader(http.StatusOK)
		return
	}
	decision, proposalID, ok := strings.Cut(cb.View.PrivateMetadata, "|")
	if !ok || (decision != DecisionApprove && decision != DecisionDeny) || !validProposalID(proposalID) {
		w.WriteHeader(http.StatusOK)
		return
	}
	var code, reason string
	if st := cb.View.State; st != nil {
		code = strings.TrimSpace(st.Values[slackTOTPBlock][slackTOTPAction].Value)
		reason = strings.TrimSpace(st.Values[slackReasonBlock][slackReasonAction].Value)
	}
	if !validTOTP(code) {
		writeSlackJSON(w, slack.NewErrorsViewSubmissionResponse(map[string]string{
			slackTOTPBlock: "Enter the 6-digit code from your authenticator app.",
		}))
		return
	}
	if cb.User.ID == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	reply, err := act(r.Context(), Action{
		Channel:     "slack",
		ChannelUser: cb.User.ID,
		ProposalID:  proposalID,
		Decision:    decision,
		TOTP:        code,
		Reason:      truncate(reason, slackMaxReasonBytes),
	})
	if err != nil {
		writeSlackJSON(w, slack.NewErrorsViewSubmissionResponse(map[string]string{
			slackTOTPBlock: chatErrorText(err),
		}))
		return
	}
	writeSlackJSON(w, slack.NewUpdateViewSubmissionResponse(slackResultModal(reply)))
}

func writeSlackJSON(w http.ResponseWriter, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}
