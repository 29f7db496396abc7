package notify

import (
	"strconv"
	"time"
)

// chatLine is one labelled line of a chat notification.
type chatLine struct{ Label, Value string }

// chatHeadline is the first line of a chat notification for m's kind.
func chatHeadline(m Message) string {
	switch m.Kind {
	case KindRequest:
		return "Approval requested"
	case KindReminder:
		return "Reminder: approval still needed"
	case KindEscalation:
		return "Escalation: approval still needed"
	case KindResolved:
		return "Approval request resolved"
	default:
		return "Decision Fabric notification"
	}
}

// chatLines is the body of a chat notification: only the Message's own fields (no
// personal data is ever in one), empty ones left out.
func chatLines(m Message) []chatLine {
	var l []chatLine
	add := func(label, value string) {
		if value != "" {
			l = append(l, chatLine{label, value})
		}
	}
	add("Proposal", m.ProposalID)
	add("Tenant", m.TenantID)
	add("Impact", m.Impact)
	add("Summary", m.Summary)
	if m.Kind == KindResolved {
		add("Outcome", m.Outcome)
	} else {
		if m.ApprovalsNeeded > 0 {
			add("Approvals needed", strconv.Itoa(m.ApprovalsNeeded))
		}
		if !m.Deadline.IsZero() {
			add("Deadline", m.Deadline.UTC().Format(time.DateTime)+" UTC")
		}
	}
	return l
}

// votable reports whether a notification of m's kind carries Approve/Deny buttons.
func votable(m Message) bool { return m.Kind != KindResolved }
