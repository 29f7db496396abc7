package notify

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// Decisions an approver can take from a chat channel.
const (
	DecisionApprove = "approve"
	DecisionDeny    = "deny"
)

// Action is a vote an approver cast from a chat channel (a Slack modal, a Telegram
// reply). The chat systems only carry it: the hil-gateway maps ChannelUser to a
// fabric approver, verifies the TOTP code and records the vote. A button press alone
// never becomes an Action; the channel first asks for the TOTP code, so approving
// from chat cannot bypass MFA.
type Action struct {
	// Channel is the chat system the action came from ("slack", "telegram").
	Channel string
	// ChannelUser is the chat system's id of the user (a Slack user id, a Telegram
	// user id in decimal).
	ChannelUser string
	// ProposalID is the proposal voted on.
	ProposalID string
	// Decision is DecisionApprove or DecisionDeny.
	Decision string
	// TOTP is the 6-digit code the user typed; "" when not yet given.
	TOTP string
	// Reason is the user's optional free-text reason.
	Reason string
}

// ActionFunc records an Action; the hil-gateway supplies it. reply is shown to the
// user; an error's message is shown to the user too, so it must carry no internal
// detail.
type ActionFunc func(ctx context.Context, a Action) (reply string, err error)

// maxChatBody bounds the request bodies the chat handlers read.
const maxChatBody = 64 << 10

var totpPattern = regexp.MustCompile(`^[0-9]{6}$`)

// validTOTP reports whether s looks like a TOTP code (six ASCII digits).
func validTOTP(s string) bool { return totpPattern.MatchString(s) }

// validProposalID reports whether id is safe to carry in a chat payload: non-empty,
// at most 128 bytes, and made only of letters, digits and "-_.:". It keeps
// separators used in button data and modal metadata out of ids.
func validProposalID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case r == '-' || r == '_' || r == '.' || r == ':':
		default:
			return false
		}
	}
	return true
}

// chatErrorText is the text shown for an ActionFunc error: its message, bounded,
// or a generic one when it is empty.
func chatErrorText(err error) string {
	s := strings.TrimSpace(err.Error())
	if s == "" {
		return "The vote was not recorded."
	}
	return truncate(s, 300)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// redactSecret replaces every occurrence of secret in s, so a library error that
// quotes a URL or request cannot carry a token into logs.
func redactSecret(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

// readChatBody reads a chat callback's body, at most maxChatBody bytes; on failure it
// has answered (400, or 413 when too large) and returns false.
func readChatBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxChatBody+1))
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return nil, false
	}
	if len(body) > maxChatBody {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	return body, true
}
