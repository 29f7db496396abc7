package notify

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-telegram/bot"
	"github.com/go-telegram/bot/models"
)

// telegramMaxCallbackData is the Bot API's limit on inline button callback data.
const telegramMaxCallbackData = 64

// telegramPrompt is the text of the message that asks for the TOTP code; the reply
// handler recovers the decision and the proposal from it.
const telegramPrompt = "Reply to this message with your 6-digit TOTP code to %s proposal %s."

var telegramPromptPattern = regexp.MustCompile(
	`^Reply to this message with your 6-digit TOTP code to (approve|deny) proposal ([A-Za-z0-9._:-]{1,128})\.$`)

// telegramSecretPattern is what setWebhook accepts as a secret_token.
var telegramSecretPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

// TelegramConfig configures the Telegram channel.
type TelegramConfig struct {
	// Token is the bot token from BotFather. It is never logged nor put in an error.
	Token string
	// ChatID is the chat notifications are posted to.
	ChatID int64
	// WebhookSecret is the secret_token given to setWebhook; Telegram sends it in
	// X-Telegram-Bot-Api-Secret-Token with every update.
	WebhookSecret string
	// ServerURL overrides the Bot API's base URL (tests, a local Bot API server);
	// "" is Telegram's own.
	ServerURL string
}

// Telegram posts approval notifications to a Telegram chat with Approve/Deny inline
// buttons and handles them through the bot's webhook: a press makes the bot ask the
// user, in a private chat, for the TOTP code, and only a reply carrying the code is
// passed on as an Action.
type Telegram struct {
	cfg   TelegramConfig
	bot   *bot.Bot
	botID int64
	seen  updateSet
}

// NewTelegram returns a Telegram channel for cfg. It makes no request.
func NewTelegram(cfg TelegramConfig) (*Telegram, error) {
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, errors.New("telegram: token is required")
	}
	if cfg.ChatID == 0 {
		return nil, errors.New("telegram: chat id is required")
	}
	if !telegramSecretPattern.MatchString(cfg.WebhookSecret) {
		return nil, errors.New("telegram: webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
	}
	opts := []bot.Option{
		bot.WithSkipGetMe(),
		bot.WithHTTPClient(15*time.Second, &http.Client{Timeout: 15 * time.Second}),
		// The library's default prints errors; ours are returned instead.
		bot.WithErrorsHandler(func(error) {}),
	}
	if cfg.ServerURL != "" {
		u, err := url.Parse(cfg.ServerURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("telegram: server url must be an absolute http(s) URL")
		}
		opts = append(opts, bot.WithServerURL(strings.TrimSuffix(cfg.ServerURL, "/")))
	}
	b, err := bot.New(cfg.Token, opts...)
	if err != nil {
		return nil, fmt.Errorf("telegram: %s", redactSecret(err.Error(), cfg.Token))
	}
	return &Telegram{cfg: cfg, bot: b, botID: b.ID()}, nil
}

// Name implements Channel.
func (t *Telegram) Name() string { return "telegram" }

// Send implements Channel: it posts m to the configured chat with sendMessage.
func (t *Telegram) Send(ctx context.Context, m Message) error {
	var rows [][]models.InlineKeyboardButton
	if votable(m) {
		approve, deny := "a:"+m.ProposalID, "d:"+m.ProposalID
		if !validProposalID(m.ProposalID) || len(approve) > telegramMaxCallbackData {
			return &PermanentError{Err: errors.New("telegram: proposal id cannot be carried in a button")}
		}
		rows = append(rows, []models.InlineKeyboardButton{
			{Text: "Approve", CallbackData: approve},
			{Text: "Deny", CallbackData: deny},
		})
	}
	if m.Link != "" {
		rows = append(rows, []models.InlineKeyboardButton{{Text: "Open approval page", URL: m.Link}})
	}
	p := &bot.SendMessageParams{
		ChatID:             t.cfg.ChatID,
		Text:               telegramText(m),
		LinkPreviewOptions: &models.LinkPreviewOptions{IsDisabled: bot.True()},
	}
	if len(rows) > 0 {
		p.ReplyMarkup = &models.InlineKeyboardMarkup{InlineKeyboard: rows}
	}
	_, err := t.bot.SendMessage(ctx, p)
	if err != nil {
		return t.classify("sendMessage", err)
	}
	return nil
}

// classify turns a Bot API error into one without the token, permanent when
// retrying cannot help (a bad request, a bot removed from the chat or a revoked
// token); rate limits, server and network errors stay retryable.
func (t *Telegram) classify(method string, err error) error {
	e := fmt.Errorf("telegram %s: %s", method, redactSecret(redactSecret(err.Error(), t.cfg.Token), t.cfg.WebhookSecret))
	var migrate *bot.MigrateError
	switch {
	case bot.IsTooManyRequestsError(err):
		return e
	case errors.As(err, &migrate),
		errors.Is(err, bot.ErrorBadRequest),
		errors.Is(err, bot.ErrorForbidden),
		errors.Is(err, bot.ErrorUnauthorized),
		errors.Is(err, bot.ErrorNotFound):
		return &PermanentError{Err: e}
	}
	return e
}

// telegramText is m as plain text (no parse mode, so nothing in it is markup).
func telegramText(m Message) string {
	var b strings.Builder
	b.WriteString(chatHeadline(m))
	for _, l := range chatLines(m) {
		b.WriteString("\n" + l.Label + ": " + l.Value)
	}
	return b.String()
}

// WebhookHandler returns the handler for the bot's webhook. Every update must carry
// X-Telegram-Bot-Api-Secret-Token equal to WebhookSecret, else 401. A press on
// Approve or Deny records nothing: the bot asks the user, in a private chat, to
// reply with the TOTP code. A reply to that prompt with a 6-digit code calls act,
// and act's reply (or error message) is sent back. Updates are answered 200 once
// authenticated and decoded, so Telegram does not redeliver them.
func (t *Telegram) WebhookHandler(act ActionFunc) http.Handler {
	if act == nil {
		panic("notify: Telegram.WebhookHandler needs an ActionFunc")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		got := r.Header.Get("X-Telegram-Bot-Api-Secret-Token")
		if subtle.ConstantTimeCompare([]byte(got), []byte(t.cfg.WebhookSecret)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		body, ok := readChatBody(w, r)
		if !ok {
			return
		}
		var u models.Update
		if err := json.Unmarshal(body, &u); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if t.seen.add(u.ID) {
			switch {
			case u.CallbackQuery != nil:
				t.handleButton(r.Context(), u.CallbackQuery)
			case u.Message != nil:
				t.handleReply(r.Context(), u.Message, act)
			}
		}
		w.WriteHeader(http.StatusOK)
	})
}

// handleButton asks the user for the TOTP code. It records nothing.
func (t *Telegram) handleButton(ctx context.Context, q *models.CallbackQuery) {
	var decision string
	prefix, proposalID, _ := strings.Cut(q.Data, ":")
	switch prefix {
	case "a":
		decision = DecisionApprove
	case "d":
		decision = DecisionDeny
	}
	if decision == "" || !validProposalID(proposalID) || q.From.ID == 0 || q.From.IsBot {
		_, _ = t.bot.AnswerCallbackQuery(ctx, &bot.AnswerCallbackQueryParams{CallbackQueryID: q.ID})
		return
	}
	// The code is asked for in the user's private chat, never in the group.
	_, err := t.bot.SendMessage(ctx, &bot.SendMessageParams{
		ChatID: q.From.ID,
		Text:   fmt.Sprintf(telegramPrompt, decision, proposalID),
		ReplyMarkup: &models.ForceReply{
			ForceReply:            true,
			InputFieldPlaceholder: "6-digit code",
		},
	})
	answer := &bot.AnswerCallbackQueryParams{CallbackQueryID: q.ID, Text: "Check your private chat with the bot for the code prompt."}
	if err != nil {
		answer.Text, answer.ShowAlert = "Open a private chat with the bot and press Start, then press the button again.", true
	}
	_, _ = t.bot.AnswerCallbackQuery(ctx, answer)
}

// handleReply passes a code sent in reply to the bot's prompt to act and sends the
// result back. Anything else is ignored.
func (t *Telegram) handleReply(ctx context.Context, msg *models.Message, act ActionFunc) {
	prompt := msg.ReplyToMessage
	if prompt == nil || prompt.From == nil || !prompt.From.IsBot || (t.botID != 0 && prompt.From.ID != t.botID) {
		return
	}
	if msg.From == nil || msg.From.IsBot || msg.Chat.Type != models.ChatTypePrivate || msg.Chat.ID != msg.From.ID {
		return
	}
	match := telegramPromptPattern.FindStringSubmatch(prompt.Text)
	if match == nil {
		return
	}
	decision, proposalID := match[1], match[2]
	code := strings.TrimSpace(msg.Text)
	var text string
	if !validTOTP(code) {
		text = "That is not a 6-digit code. Reply to the prompt with the code from your authenticator app."
	} else {
		reply, err := act(ctx, Action{
			Channel:     "telegram",
			ChannelUser: strconv.FormatInt(msg.From.ID, 10),
			ProposalID:  proposalID,
			Decision:    decision,
			TOTP:        code,
		})
		switch {
		case err != nil:
			text = chatErrorText(err)
		case reply != "":
			text = truncate(reply, 2000)
		default:
			text = "Your vote was recorded."
		}
	}
	_, _ = t.bot.SendMessage(ctx, &bot.SendMessageParams{
		ChatID:          msg.Chat.ID,
		Text:            text,
		ReplyParameters: &models.ReplyParameters{MessageID: msg.ID, AllowSendingWithoutReply: true},
	})
}

// updateSet remembers the last update ids handled, so an update Telegram delivers
// again (after a slow answer) is not acted on twice.
type updateSet struct {
	mu    sync.Mutex
	ids   map[int64]struct{}
	order []int64
}

const updateSetSize = 1024

// add records id and reports whether it was new.
func (s *updateSet) add(id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = make(map[int64]struct{}, updateSetSize)
	}
	if _, ok := s.ids[id]; ok {
		return false
	}
	if len(s.order) >= updateSetSize {
		delete(s.ids, s.order[0])
		s.order = s.order[1:]
	}
	s.ids[id] = struct{}{}
	s.order = append(s.order, id)
	return true
}
