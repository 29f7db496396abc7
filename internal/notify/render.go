package notify

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/decision-fabric/fabric/internal/redact"
)

// Bounds of a rendered message's fields.
const (
	// MaxSummaryRunes bounds the rendered summary; a longer one is cut and ends with
	// "…".
	MaxSummaryRunes = 200
	// maxIDRunes bounds the identifiers (event, proposal, tenant): longer ones are
	// refused, since a cut identifier would name something else.
	maxIDRunes = 128
	// maxLinkBytes bounds the approval link.
	maxLinkBytes = 2048
	// maxApprovals bounds ApprovalsNeeded (a larger value is a bug upstream).
	maxApprovals = 1000
)

// ErrInvalidMessage is wrapped by every error Render returns: the message is
// incomplete, malformed or holds personal data, and nothing may be sent for it.
var ErrInvalidMessage = errors.New("notify: invalid message")

// Rendered is a Message as plain text, ready for any channel.
type Rendered struct {
	// Subject is one line (an e-mail's subject, a chat message's first line).
	Subject string
	// Text is the body: one "Label: value" line per field, '\n'-separated.
	Text string
}

var (
	knownKinds    = map[string]bool{KindRequest: true, KindReminder: true, KindEscalation: true, KindResolved: true}
	knownImpacts  = map[string]bool{"low": true, "medium": true, "high": true, "critical": true}
	knownOutcomes = map[string]bool{"APPROVED": true, "DENIED": true, "EXPIRED": true}
)

// invalid returns an error wrapping ErrInvalidMessage. The reason never holds a
// field's value (it may be the personal data being refused).
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidMessage, fmt.Sprintf(format, args...))
}

// Render checks m and formats it as plain text. It refuses (returns an error
// wrapping ErrInvalidMessage, and no text) a message with a missing or unknown
// field, a link that is not an absolute http(s) URL, or any field in which
// redact finds personal data or a secret. Control and format characters (Unicode
// Cc and Cf, such as U+202E RIGHT-TO-LEFT OVERRIDE), line and paragraph
// separators and invalid UTF-8 in a field are written as visible escapes
// (`\u202e`, `\xff`; a backslash as `\\`), so the only raw line breaks are those
// between the lines of Text. The summary is cut to MaxSummaryRunes.
func Render(m Message) (Rendered, error) {
	if err := validate(m); err != nil {
		return Rendered{}, err
	}
	proposal := escape(m.ProposalID)
	tenant := escape(m.TenantID)
	impact := m.Impact // one of knownImpacts

	var subject string
	switch m.Kind {
	case KindRequest:
		subject = fmt.Sprintf("Approval needed: %s-impact proposal %s (tenant %s)", impact, proposal, tenant)
	case KindReminder:
		subject = fmt.Sprintf("Reminder: approval still needed: %s-impact proposal %s (tenant %s)", impact, proposal, tenant)
	case KindEscalation:
		subject = fmt.Sprintf("Escalation: approval still needed: %s-impact proposal %s (tenant %s)", impact, proposal, tenant)
	case KindResolved:
		subject = fmt.Sprintf("Resolved (%s): %s-impact proposal %s (tenant %s)", m.Outcome, impact, proposal, tenant)
	}
	subject = "[Decision Fabric] " + subject

	var b strings.Builder
	line := func(label, value string) {
		b.WriteString(label)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteByte('\n')
	}
	line("Kind", m.Kind)
	line("Proposal", proposal)
	line("Tenant", tenant)
	line("Impact", impact)
	line("Summary", escapeBounded(m.Summary, MaxSummaryRunes))
	line("Approvals needed", strconv.Itoa(m.ApprovalsNeeded))
	line("Deadline", m.Deadline.UTC().Format(time.RFC3339))
	if m.Kind == KindResolved {
		line("Outcome", m.Outcome)
	}
	line("Link", m.Link)
	r := Rendered{Subject: subject, Text: b.String()}

	// The fields were checked one by one; check the result again, since text that
	// is harmless in one field can form a detectable value next to a label or
	// another field.
	// The link's host is the operator's public_url, not personal data: an IP
	// address there (the default public_url is the gateway's loopback address) must
	// not make every message unsendable. Its path and query are still checked.
	scanned := strings.TrimSuffix(r.Text, "Link: "+m.Link+"\n") + "Link: " + scannableLink(m.Link) + "\n"
	if kinds := piiKinds(r.Subject + "\n" + scanned); kinds != "" {
		return Rendered{}, invalid("the rendered text holds personal data (%s)", kinds)
	}
	return r, nil
}

// validate checks m's fields: presence, known values, bounds, the link, and that
// no field holds personal data.
func validate(m Message) error {
	required := []struct{ name, value string }{
		{"EventID", m.EventID},
		{"Kind", m.Kind},
		{"TenantID", m.TenantID},
		{"ProposalID", m.ProposalID},
		{"Impact", m.Impact},
		{"Summary", m.Summary},
		{"Link", m.Link},
	}
	for _, f := range required {
		if strings.TrimSpace(f.value) == "" {
			return invalid("%s is missing", f.name)
		}
	}
	if !knownKinds[m.Kind] {
		return invalid("unknown Kind")
	}
	if !knownImpacts[m.Impact] {
		return invalid("unknown Impact")
	}
	for _, f := range []struct{ name, value string }{
		{"EventID", m.EventID}, {"TenantID", m.TenantID}, {"ProposalID", m.ProposalID},
	} {
		if utf8.RuneCountInString(f.value) > maxIDRunes {
			return invalid("%s is longer than %d characters", f.name, maxIDRunes)
		}
	}
	if m.Deadline.IsZero() {
		return invalid("Deadline is missing")
	}
	if m.Kind == KindResolved {
		if !knownOutcomes[m.Outcome] {
			return invalid("Outcome must be APPROVED, DENIED or EXPIRED for a resolved message")
		}
		if m.ApprovalsNeeded < 0 || m.ApprovalsNeeded > maxApprovals {
			return invalid("ApprovalsNeeded is out of range")
		}
	} else {
		if m.Outcome != "" {
			return invalid("Outcome is set on a %s message", m.Kind)
		}
		if m.ApprovalsNeeded < 1 || m.ApprovalsNeeded > maxApprovals {
			return invalid("ApprovalsNeeded is out of range")
		}
	}
	if err := checkLink(m.Link); err != nil {
		return err
	}
	for _, f := range []struct{ name, value string }{
		{"EventID", m.EventID},
		{"TenantID", m.TenantID},
		{"ProposalID", m.ProposalID},
		{"Summary", m.Summary},
		{"Outcome", m.Outcome},
		{"Link", scannableLink(m.Link)},
	} {
		if kinds := piiKinds(f.value); kinds != "" {
			return invalid("%s holds personal data (%s)", f.name, kinds)
		}
	}
	return nil
}

// checkLink accepts an absolute http or https URL with a host and no user
// information, written in printable ASCII (a link is built by the gateway and
// percent-encoded; anything else is a bug or an attack).
func checkLink(link string) error {
	if len(link) > maxLinkBytes {
		return invalid("Link is longer than %d bytes", maxLinkBytes)
	}
	for i := 0; i < len(link); i++ {
		if c := link[i]; c <= ' ' || c >= 0x7f {
			return invalid("Link holds a character outside printable ASCII")
		}
	}
	u, err := url.Parse(link)
	if err != nil {
		return invalid("Link is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalid("Link is not an http(s) URL")
	}
	if u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		return invalid("Link has no host")
	}
	if u.User != nil {
		return invalid("Link holds user information")
	}
	return nil
}

// linkScanHost stands for the link's host in the personal-data scan.
const linkScanHost = "approval-page.invalid"

// scannableLink is link (already checked by checkLink) with its host replaced by
// linkScanHost, for the personal-data scan: the host comes from configuration
// (hil.public_url, by default the gateway's own IP address and port), while the path
// and query carry per-message values and are still scanned.
func scannableLink(link string) string {
	u, err := url.Parse(link)
	if err != nil || u.Host == "" {
		return link
	}
	u.Host = linkScanHost
	return u.String()
}

// piiKinds returns the kinds of sensitive data redact finds in s, sorted and
// comma-separated, or "" when there is none. Only the kinds are returned, never
// the data.
func piiKinds(s string) string {
	if redact.String(s) == s {
		return ""
	}
	seen := map[string]bool{}
	for _, f := range redact.Find(s) {
		seen[string(f.Kind)] = true
	}
	if len(seen) == 0 {
		// String changed s but Find reports nothing directly (a value that only
		// appears after a first replacement): still refused.
		return "sensitive data"
	}
	kinds := make([]string, 0, len(seen))
	for k := range seen {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return strings.Join(kinds, ",")
}

// escape writes s with every rune that could hide or reorder text made visible.
func escape(s string) string { return escapeBounded(s, -1) }

// escapeBounded is escape, with the result cut to at most maxRunes runes (when
// maxRunes >= 0), ending with "…" when cut. An escape sequence is never split.
func escapeBounded(s string, maxRunes int) string {
	var pieces []string
	total := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		var p string
		switch {
		case r == utf8.RuneError && size == 1:
			p = fmt.Sprintf(`\x%02x`, s[i])
		case r == '\\':
			p = `\\`
		case mustEscape(r):
			if r > 0xffff {
				p = fmt.Sprintf(`\U%08x`, r)
			} else {
				p = fmt.Sprintf(`\u%04x`, r)
			}
		default:
			p = s[i : i+size]
		}
		i += size
		pieces = append(pieces, p)
		total += utf8.RuneCountInString(p)
	}
	if maxRunes < 0 || total <= maxRunes {
		return strings.Join(pieces, "")
	}
	var b strings.Builder
	n := 0
	for _, p := range pieces {
		pn := utf8.RuneCountInString(p)
		if n+pn > maxRunes-1 {
			break
		}
		b.WriteString(p)
		n += pn
	}
	b.WriteString("…")
	return b.String()
}

// mustEscape reports runes written as escapes: control (Cc) and format (Cf)
// characters, line and paragraph separators (Zl, Zp), private-use and surrogate
// code points, and unassigned noncharacters such as U+FFFE.
func mustEscape(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co, unicode.Cs) ||
		(r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe
}
