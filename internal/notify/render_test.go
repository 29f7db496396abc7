package notify

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/decision-fabric/fabric/internal/redact"
)

// validMessage is a complete request that Render accepts.
func validMessage() Message {
	return Message{
		EventID:         "01JEXAMPLE0000000000000000/request",
		Kind:            KindRequest,
		TenantID:        "t1",
		ProposalID:      "01JEXAMPLE0000000000000000",
		Impact:          "high",
		Summary:         "scale-up checkout-api in eu-west-1, us-east-1",
		Deadline:        time.Date(2026, 12, 6, 8, 30, 0, 0, time.FixedZone("CET", 3600)),
		ApprovalsNeeded: 2,
		Link:            "https://hil.example.com/approvals/01JEXAMPLE0000000000000000?tenant=t1",
	}
}

func TestRenderRequest(t *testing.T) {
	r, err := Render(validMessage())
	if err != nil {
		t.Fatal(err)
	}
	wantSubject := "[Decision Fabric] Approval needed: high-impact proposal 01JEXAMPLE0000000000000000 (tenant t1)"
	if r.Subject != wantSubject {
		t.Errorf("subject\n got %q\nwant %q", r.Subject, wantSubject)
	}
	wantText := "Kind: request\n" +
		"Proposal: 01JEXAMPLE0000000000000000\n" +
		"Tenant: t1\n" +
		"Impact: high\n" +
		"Summary: scale-up checkout-api in eu-west-1, us-east-1\n" +
		"Approvals needed: 2\n" +
		"Deadline: 2026-12-06T07:30:00Z\n" + // converted to UTC
		"Link: https://hil.example.com/approvals/01JEXAMPLE0000000000000000?tenant=t1\n"
	if r.Text != wantText {
		t.Errorf("text\n got %q\nwant %q", r.Text, wantText)
	}
}

func TestRenderKinds(t *testing.T) {
	for _, tc := range []struct {
		kind, outcome string
		approvals     int
		subject       string
		outcomeLine   bool
	}{
		{KindReminder, "", 1, "[Decision Fabric] Reminder: approval still needed: high-impact proposal 01JEXAMPLE0000000000000000 (tenant t1)", false},
		{KindEscalation, "", 1, "[Decision Fabric] Escalation: approval still needed: high-impact proposal 01JEXAMPLE0000000000000000 (tenant t1)", false},
		{KindResolved, "DENIED", 0, "[Decision Fabric] Resolved (DENIED): high-impact proposal 01JEXAMPLE0000000000000000 (tenant t1)", true},
	} {
		m := validMessage()
		m.Kind, m.Outcome, m.ApprovalsNeeded = tc.kind, tc.outcome, tc.approvals
		r, err := Render(m)
		if err != nil {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		if r.Subject != tc.subject {
			t.Errorf("%s: subject %q, want %q", tc.kind, r.Subject, tc.subject)
		}
		if !strings.HasPrefix(r.Text, "Kind: "+tc.kind+"\n") {
			t.Errorf("%s: text does not start with its kind: %q", tc.kind, r.Text)
		}
		if got := strings.Contains(r.Text, "\nOutcome: "+tc.outcome+"\n"); got != tc.outcomeLine {
			t.Errorf("%s: outcome line present=%v, want %v: %q", tc.kind, got, tc.outcomeLine, r.Text)
		}
	}
}

func TestRenderRefusesInvalid(t *testing.T) {
	for name, mutate := range map[string]func(*Message){
		"no event id":              func(m *Message) { m.EventID = "" },
		"blank tenant":             func(m *Message) { m.TenantID = "  " },
		"no proposal":              func(m *Message) { m.ProposalID = "" },
		"no summary":               func(m *Message) { m.Summary = "" },
		"no link":                  func(m *Message) { m.Link = "" },
		"no deadline":              func(m *Message) { m.Deadline = time.Time{} },
		"unknown kind":             func(m *Message) { m.Kind = "digest" },
		"unknown impact":           func(m *Message) { m.Impact = "huge" },
		"zero approvals":           func(m *Message) { m.ApprovalsNeeded = 0 },
		"outcome on request":       func(m *Message) { m.Outcome = "APPROVED" },
		"resolved without outcome": func(m *Message) { m.Kind = KindResolved },
		"resolved bad outcome":     func(m *Message) { m.Kind, m.Outcome = KindResolved, "MAYBE" },
		"long proposal id":         func(m *Message) { m.ProposalID = strings.Repeat("A", 129) },
		"javascript link":          func(m *Message) { m.Link = "javascript:alert(1)" },
		"ftp link":                 func(m *Message) { m.Link = "ftp://hil.example.com/x" },
		"relative link":            func(m *Message) { m.Link = "/approvals/1" },
		"link without host":        func(m *Message) { m.Link = "https:///approvals/1" },
		"link with userinfo":       func(m *Message) { m.Link = "https://admin@hil.example.com/approvals/1" },
		"link with space":          func(m *Message) { m.Link = "https://hil.example.com/a b" },
		"link with bidi override":  func(m *Message) { m.Link = "https://hil.example.com/\u202eexe.txt" },
	} {
		m := validMessage()
		mutate(&m)
		r, err := Render(m)
		if err == nil {
			t.Errorf("%s: accepted: %+v", name, r)
			continue
		}
		if !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: error %v does not wrap ErrInvalidMessage", name, err)
		}
		if r != (Rendered{}) {
			t.Errorf("%s: refused but returned text %+v", name, r)
		}
	}
}

func TestRenderRefusesPersonalData(t *testing.T) {
	const email = "alice.smith@example.org"
	for name, mutate := range map[string]func(*Message){
		"email in summary":      func(m *Message) { m.Summary = "restart db for " + email },
		"phone in summary":      func(m *Message) { m.Summary = "call +44 20 7946 0958 first" },
		"ip in summary":         func(m *Message) { m.Summary = "block 203.0.113.77 in eu-west-1" },
		"iban in summary":       func(m *Message) { m.Summary = "refund to GB82 WEST 1234 5698 7654 32" },
		"email in tenant":       func(m *Message) { m.TenantID = email },
		"email in proposal":     func(m *Message) { m.ProposalID = email },
		"email in event id":     func(m *Message) { m.EventID = email + "/request" },
		"email in link query":   func(m *Message) { m.Link = "https://hil.example.com/a?who=" + email },
		"password in link":      func(m *Message) { m.Link = "https://hil.example.com/a?password=hunter2" },
		"ip in link query":      func(m *Message) { m.Link = "http://127.0.0.1:8080/ui/p/x?client=203.0.113.77" },
		"email in link path":    func(m *Message) { m.Link = "http://10.0.0.5/ui/p/" + email },
		"email behind override": func(m *Message) { m.Summary = "x alice\u202e@example.org" },
	} {
		m := validMessage()
		mutate(&m)
		r, err := Render(m)
		if err == nil {
			t.Errorf("%s: accepted: %+v", name, r)
			continue
		}
		if !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: error %v does not wrap ErrInvalidMessage", name, err)
		}
		// The refusal itself must not carry the data.
		if redact.String(err.Error()) != err.Error() || strings.Contains(err.Error(), "alice") {
			t.Errorf("%s: error message leaks the value: %q", name, err)
		}
	}
}

func TestRenderEscapesControlAndFormatCharacters(t *testing.T) {
	m := validMessage()
	m.Summary = "restart\u202edb\x1b[31m\ttab\nline\u2028sep\u200b\\end\xff"
	m.TenantID = "t\u202e1"
	r, err := Render(m)
	if err != nil {
		t.Fatal(err)
	}
	wantSummary := `Summary: restart\u202edb\u001b[31m\u0009tab\u000aline\u2028sep\u200b\\end\xff` + "\n"
	if !strings.Contains(r.Text, wantSummary) {
		t.Errorf("summary not escaped as expected\n got %q\nwant line %q", r.Text, wantSummary)
	}
	if !strings.Contains(r.Subject, `(tenant t\u202e1)`) || !strings.Contains(r.Text, "Tenant: t\\u202e1\n") {
		t.Errorf("tenant not escaped: %q / %q", r.Subject, r.Text)
	}
	assertClean(t, r)
	if n := strings.Count(r.Text, "\n"); n != 8 {
		t.Errorf("text has %d lines, want 8 (a field's newline must not add one): %q", n, r.Text)
	}
}

func TestRenderTruncatesSummary(t *testing.T) {
	m := validMessage()
	m.Summary = strings.Repeat("ab ", 100) // 300 runes
	r, err := Render(m)
	if err != nil {
		t.Fatal(err)
	}
	got := summaryLine(t, r)
	if n := utf8.RuneCountInString(got); n != MaxSummaryRunes {
		t.Errorf("summary has %d runes, want %d: %q", n, MaxSummaryRunes, got)
	}
	if !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "ab ab ") {
		t.Errorf("summary not cut with an ellipsis: %q", got)
	}

	// Exactly at the bound: kept whole.
	m.Summary = strings.Repeat("x", MaxSummaryRunes)
	if r, err = Render(m); err != nil {
		t.Fatal(err)
	}
	if got := summaryLine(t, r); got != m.Summary {
		t.Errorf("a summary of exactly %d runes was changed: %q", MaxSummaryRunes, got)
	}

	// Escapes count towards the bound and are never split.
	m.Summary = strings.Repeat("a", 195) + "\u202e\u202e"
	if r, err = Render(m); err != nil {
		t.Fatal(err)
	}
	got = summaryLine(t, r)
	if want := strings.Repeat("a", 195) + "…"; got != want {
		t.Errorf("escape split or bound wrong:\n got %q\nwant %q", got, want)
	}
}

func summaryLine(t *testing.T, r Rendered) string {
	t.Helper()
	for _, l := range strings.Split(r.Text, "\n") {
		if s, ok := strings.CutPrefix(l, "Summary: "); ok {
			return s
		}
	}
	t.Fatalf("no summary line in %q", r.Text)
	return ""
}

// assertClean checks the properties every rendered message has: valid UTF-8, no raw
// control or format character other than the text's line breaks, a one-line subject,
// and nothing redact would remove.
func assertClean(t *testing.T, r Rendered) {
	t.Helper()
	for name, s := range map[string]string{"subject": r.Subject, "text": r.Text} {
		if !utf8.ValidString(s) {
			t.Errorf("%s is not valid UTF-8: %q", name, s)
		}
		for _, c := range s {
			if c == '\n' && name == "text" {
				continue
			}
			if unicode.In(c, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
				t.Errorf("%s holds raw %U: %q", name, c, s)
			}
		}
		if redact.String(s) != s {
			t.Errorf("%s holds personal data: %q", name, s)
		}
	}
}

func FuzzRender(f *testing.F) {
	v := validMessage()
	f.Add(v.EventID, v.Kind, v.TenantID, v.ProposalID, v.Impact, v.Summary, int64(1765000000), 2, "", v.Link)
	f.Add("e/1", KindResolved, "t\u202e1", "p\x00", "low", "a\u2028b\xff\\", int64(0), 0, "EXPIRED", "http://h/")
	f.Add("e", KindRequest, "t", "p", "critical", "mail bob@example.com now", int64(1), 1, "", "https://h/x")
	f.Add("e", KindReminder, "t", "p", "medium", strings.Repeat("\u200b", 300), int64(-1), 3, "", "https://h/x?a=1")
	f.Fuzz(func(t *testing.T, eventID, kind, tenant, proposal, impact, summary string, deadline int64, approvals int, outcome, link string) {
		m := Message{
			EventID: eventID, Kind: kind, TenantID: tenant, ProposalID: proposal, Impact: impact,
			Summary: summary, Deadline: time.Unix(deadline, 0), ApprovalsNeeded: approvals,
			Outcome: outcome, Link: link,
		}
		r, err := Render(m)
		if err != nil {
			if r != (Rendered{}) {
				t.Fatalf("refused (%v) but returned text %+v", err, r)
			}
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("error %v does not wrap ErrInvalidMessage", err)
			}
			return
		}
		assertClean(t, r)
		if strings.Contains(r.Subject, "\n") {
			t.Fatalf("subject spans lines: %q", r.Subject)
		}
		if n := utf8.RuneCountInString(summaryLine(t, r)); n > MaxSummaryRunes {
			t.Fatalf("summary has %d runes", n)
		}
	})
}

// TestRenderLinkHostIsNotPersonalData: the link's host is the operator's public_url,
// by default the gateway's own loopback address: an IP address there is not personal
// data (it made every e-mail unsendable: "Link holds personal data (ipv4)").
func TestRenderLinkHostIsNotPersonalData(t *testing.T) {
	for _, link := range []string{
		"http://127.0.0.1:41234/ui/p/01JEXAMPLE0000000000000000",
		"https://10.20.30.40/ui/p/01JEXAMPLE0000000000000000",
		"http://[::1]:8080/ui/p/01JEXAMPLE0000000000000000",
	} {
		m := validMessage()
		m.Link = link
		r, err := Render(m)
		if err != nil {
			t.Errorf("%s: %v", link, err)
			continue
		}
		if !strings.Contains(r.Text, "Link: "+link+"\n") {
			t.Errorf("%s: the link is not in the text: %q", link, r.Text)
		}
	}
}
