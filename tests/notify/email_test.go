package notify

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/notify"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// nfEmailPattern finds anything shaped like an e-mail address.
var nfEmailPattern = regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`)

// nfSMTP points the fabric's e-mail channel (the only channel) at mp.
func nfSMTP(mp *fabrictest.Mailpit) func(c *config.Config) {
	return func(c *config.Config) {
		c.HIL.Channels = []string{"smtp"}
		c.HIL.SMTP = config.SMTP{Host: mp.SMTPHost, Port: mp.SMTPPort, From: "Decision Fabric <hil@fabric.test>",
			To: []string{"approvers@fabric.test"}, TLS: "none"}
	}
}

// TestEmailOnePerRequestNoPII: five high-impact proposals submitted by a proposer whose
// subject is an e-mail address, with a ticket number among their parameters, reach a
// real SMTP server (mailpit) as exactly one e-mail each, with the Message-ID and
// X-Decision-Fabric-Event of their request event. Each names the proposal, tenant,
// impact, summary (action, target, regions) and the approval page's link, and holds no
// e-mail address, no parameter value and nothing of the proposer.
func TestEmailOnePerRequestNoPII(t *testing.T) {
	t.Parallel()
	const n = 5
	const proposer = "alice@example.com"
	nfEachStore(t, func(t *testing.T, st fabrictest.Store) {
		mp := fabrictest.StartMailpit(t)
		f := nfStart(t, st, "2m", "1m", nfSMTP(mp))
		tok := f.TokenWithGroups(t, proposer, "t1", []string{"sre"}, auth.RoleProposer)

		want := map[string]string{} // event id -> proposal id
		targets := map[string]string{}
		for i := range n {
			target := fmt.Sprintf("svc-mail-%d", i)
			p := nfSubmit(t, f, tok, fmt.Sprintf(
				`{"action":"scale","target":%q,"regions":["eu-west","eu-central"],"parameters":{"replicas":%d,"ticket":"OPS-123"}}`, target, 7+i))
			p = nfAwait(t, f, tok, p.ID, "PROPOSAL_STATUS_PENDING_APPROVAL")
			require.Equal(t, "high", p.Impact)
			want[p.ID+"/"+notify.KindRequest] = p.ID
			targets[p.ID] = target
		}

		mp.WaitFor(t, n, 20*time.Second)
		time.Sleep(1500 * time.Millisecond) // a late duplicate would land by now (poll is 500 ms)
		msgs := mp.Messages(t)
		require.Len(t, msgs, n, "exactly one e-mail per approval request")

		seen := map[string]bool{}
		for _, s := range msgs {
			h := mp.Headers(t, s.ID)
			require.Len(t, h[notify.HeaderEvent], 1, "one %s header", notify.HeaderEvent)
			event := h[notify.HeaderEvent][0]
			id, ok := want[event]
			require.True(t, ok, "an e-mail for an unknown event %q", event)
			require.False(t, seen[event], "two e-mails for %s", event)
			seen[event] = true
			require.Equal(t, notify.MessageID(event), s.MessageID, "the Message-ID is derived from the event")

			m := mp.Message(t, s.ID)
			text := strings.ReplaceAll(m.Text, "\r\n", "\n") // SMTP's line ends
			require.Equal(t, "hil@fabric.test", m.From.Address)
			require.Len(t, m.To, 1)
			require.Equal(t, "approvers@fabric.test", m.To[0].Address)
			require.Contains(t, m.Subject, id)
			require.Contains(t, m.Subject, "tenant t1")
			require.Contains(t, m.Subject, "high-impact")
			require.Contains(t, m.Subject, "Approval needed")
			for _, line := range []string{
				"Kind: request",
				"Proposal: " + id,
				"Tenant: t1",
				"Impact: high",
				"Summary: scale " + targets[id] + " in eu-west, eu-central",
				"Approvals needed: 2",
				"Link: " + nfLink(f, id),
			} {
				require.Contains(t, text, line+"\n", "the body of %s", id)
			}
			visible := m.Subject + "\n" + m.Text + "\n" + m.HTML
			require.Empty(t, nfEmailPattern.FindAllString(visible, -1), "no e-mail address in the subject or body: %q", visible)
			raw := mp.Raw(t, s.ID)
			for _, secret := range []string{proposer, "alice", "OPS-123", "ticket", "replicas"} {
				require.NotContains(t, raw, secret, "the e-mail of %s (headers included) must not carry %q", id, secret)
			}
		}
		require.Len(t, seen, n, "every proposal's request was mailed")
	})
}
