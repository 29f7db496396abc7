package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/config"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/tests/fabrictest"
)

// approvalPolicy makes every change high impact and asks for one sre AND one manager;
// one sre's denial ends it.
const approvalPolicy = `
version: 1
defaults:
  quorum: majority
  impact_rules:
    - {name: everything, when: "true", impact: high, reason: "every change is high impact here"}
  approval:
    sets:
      - rules:
          - {name: sre, approve: 1, deny: 1, filter: {roles: [approver], groups: [sre]}}
      - rules:
          - {name: manager, approve: 1, filter: {roles: [approver], groups: [manager]}}
    expires_after: %s
    reminder_before: %s
`

// withApprovalPolicy writes approvalPolicy with the given expiry and reminder.
func withApprovalPolicy(expires, reminder string) func(t *testing.T, c *config.Config) {
	return func(t *testing.T, c *config.Config) {
		dir := t.TempDir()
		regions, pol := filepath.Join(dir, "regions.yaml"), filepath.Join(dir, "policy.yaml")
		require.NoError(t, os.WriteFile(regions, []byte(fabrictest.InstantRegions), 0o600))
		require.NoError(t, os.WriteFile(pol, []byte(fmt.Sprintf(approvalPolicy, expires, reminder)), 0o600))
		c.RegionsFile, c.PolicyFile = regions, pol
	}
}

// eachApprovalFabric runs scenario on the all-in-one fabric on both stores and on the
// seven-process fabric (the coordinator reaches the hil-gateway over gRPC, and back).
func eachApprovalFabric(t *testing.T, configure func(t *testing.T, c *config.Config), scenario func(t *testing.T, f *fabrictest.Fabric)) {
	eachStore(t, configure, scenario)
	t.Run("split", func(t *testing.T) {
		t.Parallel()
		f := fabrictest.Start(t, fabrictest.Options{Topology: fabrictest.Split, Store: fabrictest.SQLite,
			Configure: func(c *config.Config) { configure(t, c) }})
		scenario(t, f)
	})
}

// approver is a person with a TOTP enrolment.
type approver struct {
	subject string
	token   string
	secret  string
}

// enrol mints subject's token (approver role, groups) and enrols it for TOTP through
// POST /mfa/enroll.
func enrol(t *testing.T, f *fabrictest.Fabric, subject, tenant string, groups ...string) approver {
	t.Helper()
	tok := f.TokenWithGroups(t, subject, tenant, groups, auth.RoleApprover)
	r := f.Do(t, http.MethodPost, fabric.HIL, "/mfa/enroll", tok, `{}`)
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out struct {
		OtpauthURI string `json:"otpauth_uri"`
		QRPNG      string `json:"qr_png"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &out))
	require.True(t, strings.HasPrefix(out.OtpauthURI, "otpauth://totp/"), out.OtpauthURI)
	png, err := base64.StdEncoding.DecodeString(out.QRPNG)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(png), "\x89PNG"), "the QR code is a PNG")
	key, err := otp.NewKeyFromURL(out.OtpauthURI)
	require.NoError(t, err)
	return approver{subject: subject, token: tok, secret: key.Secret()}
}

// code is a's TOTP code at time at.
func (a approver) code(t *testing.T, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(a.secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	require.NoError(t, err)
	return c
}

// vote posts a's decision on proposal id with code.
func (a approver) vote(t *testing.T, f *fabrictest.Fabric, id, decision, code string) fabrictest.Response {
	t.Helper()
	body := fmt.Sprintf(`{"decision":%q,"reason":"checked the diff","mfa":{"totp":%q}}`, decision, code)
	return f.Do(t, http.MethodPost, fabric.HIL, "/approve/"+id, a.token, body)
}

// pendingIDs is GET /pending/{tenant} as tok sees it.
func pendingIDs(t *testing.T, f *fabrictest.Fabric, tenant, tok string) ([]string, fabrictest.Response) {
	t.Helper()
	r := f.Do(t, http.MethodGet, fabric.HIL, "/pending/"+tenant, tok, "")
	if r.Status != http.StatusOK {
		return nil, r
	}
	var out struct {
		Pending []struct {
			ProposalID string   `json:"proposal_id"`
			CanVote    bool     `json:"can_vote"`
			Diff       []any    `json:"diff"`
			Needed     []string `json:"needed"`
		} `json:"pending"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &out))
	var ids []string
	for _, p := range out.Pending {
		ids = append(ids, p.ProposalID)
	}
	return ids, r
}

// pendingItem is proposal id as tok sees it in GET /pending/t1.
func pendingItem(t *testing.T, f *fabrictest.Fabric, tok, id string) pendingJSON {
	t.Helper()
	r := f.Do(t, http.MethodGet, fabric.HIL, "/pending/t1", tok, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	var out struct{ Pending []pendingJSON }
	require.NoError(t, json.Unmarshal(r.Body, &out))
	for _, it := range out.Pending {
		if it.ProposalID == id {
			return it
		}
	}
	require.Failf(t, "not pending", "%s is not in /pending/t1", id)
	return pendingJSON{}
}

// pendingJSON is the part of a pending item the tests read.
type pendingJSON struct {
	ProposalID string   `json:"proposal_id"`
	ApprovedBy []string `json:"approved_by"`
	Needed     []string `json:"needed"`
	Deadline   string   `json:"deadline"`
	CanVote    bool     `json:"can_vote"`
	WhyNot     string   `json:"why_not"`
	Diff       []struct {
		Path, Before, After string
	} `json:"diff"`
	Proposal struct {
		Manifest struct{ Action string } `json:"manifest"`
		Score    struct {
			Explanation string `json:"explanation"`
			RiskLevel   string `json:"risk_level"`
		} `json:"score"`
		Policy struct {
			Reasons []string `json:"reasons"`
		} `json:"policy"`
	} `json:"proposal"`
}

// TestApprovalQuorumWithMFA is the acceptance on both stores: a high-impact
// proposal is listed for its tenant only; wrong, expired and replayed codes and
// self-approval are refused and change nothing; two sres leave "one sre AND one
// manager" pending, a manager approves it, and a dry run then lets enactment
// proceed; one sre's denial ends another proposal DENIED.
func TestApprovalQuorumWithMFA(t *testing.T) {
	eachApprovalFabric(t, withApprovalPolicy("2m", "1m"), func(t *testing.T, f *fabrictest.Fabric) {
		agent := client{f, f.TokenWithGroups(t, "agent-7", "t1", []string{"sre"}, auth.RoleProposer, auth.RoleApprover)}
		p := agent.submit(t, `{"action":"scale","target":"svc-approve","regions":["eu-west"],"parameters":{"replicas":11}}`)
		p = agent.await(t, p.ID, "PROPOSAL_STATUS_PENDING_APPROVAL")
		require.Equal(t, "high", p.Impact)

		sre1 := enrol(t, f, "sre-ana", "t1", "sre")
		sre2 := enrol(t, f, "sre-bo", "t1", "sre", "oncall")
		mgr := enrol(t, f, "mgr-cy", "t1", "manager")
		other := enrol(t, f, "sre-t2", "t2", "sre")

		ids, _ := pendingIDs(t, f, "t1", sre1.token)
		require.Contains(t, ids, p.ID, "the proposal waits in its tenant's queue")
		ids, _ = pendingIDs(t, f, "t2", other.token)
		require.NotContains(t, ids, p.ID, "another tenant never sees it")
		_, r := pendingIDs(t, f, "t2", sre1.token)
		require.Equal(t, http.StatusForbidden, r.Status, "an approver lists their own tenant only")
		_, r = pendingIDs(t, f, "t1", agent.token[:0]+f.Token(t, "t1", auth.RoleProposer))
		require.Equal(t, http.StatusForbidden, r.Status, "a proposer cannot list approvals")

		version := func() string { return agent.get(t, p.ID).Status + "/" + fmt.Sprint(len(agent.get(t, p.ID).Reason)) }
		before := version()
		now := time.Now()
		wrong := "000000"
		if wrong == sre1.code(t, now) {
			wrong = "111111"
		}
		r = sre1.vote(t, f, p.ID, "approve", wrong)
		require.Equal(t, http.StatusUnauthorized, r.Status, string(r.Body))
		r = sre1.vote(t, f, p.ID, "approve", sre1.code(t, now.Add(-10*time.Minute)))
		require.Equal(t, http.StatusUnauthorized, r.Status, "an expired code: %s", r.Body)
		r = other.vote(t, f, p.ID, "approve", other.code(t, now))
		require.Equal(t, http.StatusNotFound, r.Status, "another tenant's approver: %s", r.Body)
		// The proposer is an sre with the approver role, and still may not approve.
		self := approver{subject: "agent-7", token: agent.token}
		r = self.vote(t, f, p.ID, "approve", "123456")
		require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "proposer")
		require.Equal(t, before, version(), "refused votes change nothing")
		require.Equal(t, "PROPOSAL_STATUS_PENDING_APPROVAL", agent.get(t, p.ID).Status)

		// Two sres: the sre set is met, the manager set is not.
		r = sre1.vote(t, f, p.ID, "approve", sre1.code(t, time.Now()))
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "PROPOSAL_STATUS_PENDING_APPROVAL")
		// What an approver sees now: the manifest, its diff against the world, the
		// regions' votes, the score and its explanation, the risk, the policy's reasons,
		// who approved, what is missing, the deadline; and that sre-ana has voted.
		item := pendingItem(t, f, sre1.token, p.ID)
		require.Equal(t, []string{"sre-ana"}, item.ApprovedBy)
		require.False(t, item.CanVote)
		require.Contains(t, item.WhyNot, "already voted")
		require.NotEmpty(t, item.Diff, "the diff against the current world")
		require.Contains(t, item.Diff[0].After, "11", "replicas 2-9 become 11")
		require.NotEmpty(t, item.Needed, "the manager set is still missing")
		require.NotEmpty(t, item.Deadline)
		require.NotEmpty(t, item.Proposal.Score.Explanation)
		require.NotEmpty(t, item.Proposal.Score.RiskLevel)
		require.NotEmpty(t, item.Proposal.Policy.Reasons)
		require.Equal(t, "scale", item.Proposal.Manifest.Action)
		require.True(t, pendingItem(t, f, sre2.token, p.ID).CanVote)
		r = sre2.vote(t, f, p.ID, "approve", sre2.code(t, time.Now()))
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Equal(t, "PROPOSAL_STATUS_PENDING_APPROVAL", agent.get(t, p.ID).Status, "two sres do not make a manager")
		r = sre1.vote(t, f, p.ID, "approve", sre1.code(t, time.Now().Add(30*time.Second)))
		require.Equal(t, http.StatusConflict, r.Status, "one vote per approver: %s", r.Body)

		// Enactment is refused until the rules are met.
		r = agent.post(t, "/proposals/"+p.ID+"/enact", `{}`)
		require.Equal(t, http.StatusConflict, r.Status, string(r.Body))

		code := mgr.code(t, time.Now())
		r = mgr.vote(t, f, p.ID, "approve", code)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Contains(t, string(r.Body), "PROPOSAL_STATUS_APPROVED")
		require.Equal(t, "PROPOSAL_STATUS_APPROVED", agent.get(t, p.ID).Status)

		// A replayed code is refused (on another proposal, so nothing else refuses it).
		q := agent.submit(t, `{"action":"scale","target":"svc-replay","regions":["eu-west"],"parameters":{"replicas":2}}`)
		agent.await(t, q.ID, "PROPOSAL_STATUS_PENDING_APPROVAL")
		r = mgr.vote(t, f, q.ID, "approve", code)
		require.Equal(t, http.StatusUnauthorized, r.Status, "a replayed code: %s", r.Body)
		require.Contains(t, string(r.Body), "already used")

		// A passed dry run, then enactment.
		r = agent.post(t, "/proposals/"+p.ID+"/enact", `{"dry_run":true}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		r = agent.post(t, "/proposals/"+p.ID+"/enact", `{}`)
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		require.Equal(t, "PROPOSAL_STATUS_ENACTED", agent.get(t, p.ID).Status)

		// The export carries the three signed votes; `fabric decision verify` checks
		// them offline and fails when one is altered.
		verifyApprovedExport(t, f, p.ID, []string{"sre-ana", "sre-bo", "mgr-cy"})

		// One sre's denial (deny threshold 1) ends q.
		r = sre2.vote(t, f, q.ID, "deny", sre2.code(t, time.Now().Add(30*time.Second))) // the next step: this one was used
		require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		denied := agent.get(t, q.ID)
		require.Equal(t, "PROPOSAL_STATUS_DENIED", denied.Status)
		require.Contains(t, denied.Reason, "sre-bo")
		require.Equal(t, http.StatusConflict, agent.post(t, "/proposals/"+q.ID+"/enact", `{}`).Status)

		// Each vote is in the audit trail, attributed to its approver.
		aud := f.Token(t, "t1", auth.RoleAuditor)
		require.Eventually(t, func() bool {
			r := f.Do(t, http.MethodGet, fabric.Auditor, "/audit/"+p.ID, aud, "")
			return r.Status == http.StatusOK && strings.Count(string(r.Body), "approval.vote") == 3 &&
				strings.Contains(string(r.Body), "mgr-cy") && strings.Contains(string(r.Body), `totp`)
		}, 10*time.Second, 50*time.Millisecond, "three votes audited")

		// Notifications: the request was sent, once, on the simulated channel.
		ctx := context.Background()
		require.Eventually(t, func() bool {
			ns, err := f.Store().Approvals().ListNotifications(ctx, "t1", p.ID)
			require.NoError(t, err)
			for _, n := range ns {
				if n.Kind == "request" && !n.SentAt.IsZero() {
					return true
				}
			}
			return false
		}, 10*time.Second, 50*time.Millisecond)
	})
}

// TestApprovalExpires: no vote before the deadline → EXPIRED with the reason, after a
// reminder was sent (and the escalation, were a second channel configured).
func TestApprovalExpires(t *testing.T) {
	eachStore(t, withApprovalPolicy("3s", "2s"), func(t *testing.T, f *fabrictest.Fabric) {
		agent := client{f, f.Token(t, "t1", auth.RoleProposer)}
		p := agent.submit(t, `{"action":"scale","target":"svc-expire","regions":["eu-west"],"parameters":{"replicas":3}}`)
		agent.await(t, p.ID, "PROPOSAL_STATUS_PENDING_APPROVAL")
		p = agent.await(t, p.ID, "PROPOSAL_STATUS_EXPIRED")
		require.Contains(t, p.Reason, "approval request expired")
		ns, err := f.Store().Approvals().ListNotifications(context.Background(), "t1", p.ID)
		require.NoError(t, err)
		sent := map[string]bool{}
		for _, n := range ns {
			if !n.SentAt.IsZero() {
				sent[n.Kind] = true
			}
		}
		require.True(t, sent["request"], "the request was sent: %+v", ns)
		require.True(t, sent["reminder"], "a reminder was sent before expiry: %+v", ns)
	})
}

// verifyApprovedExport exports decision id, verifies it with the public keys alone, and
// shows that changing one byte of a vote's reason, or its decision, fails verification
// naming the approval.
func verifyApprovedExport(t *testing.T, f *fabrictest.Fabric, id string, approvers []string) {
	t.Helper()
	dir := t.TempDir()
	export := filepath.Join(dir, "decision.json")
	code, _ := fabricCLI(t, "decision", "export", "-url", f.URL(fabric.Auditor), "-id", id,
		"-token", f.Token(t, "t1", auth.RoleAuditor), "-out", export)
	require.Equal(t, 0, code)
	cfgFile := filepath.Join(dir, "fabric.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("data_dir: "+f.Cfg.DataDir+"\n"), 0o600))
	regionKeys := filepath.Join(dir, "region-keys")
	code, _ = fabricCLI(t, "region-keys", "export", "-config", cfgFile, "-out", regionKeys)
	require.Equal(t, 0, code)
	keys := filepath.Join(f.Cfg.DataDir, "keys")
	verify := func(file string) (int, string) {
		return fabricCLI(t, "decision", "verify", "-bundle", file,
			"-cosign-key", filepath.Join(keys, signing.CosignPubFile),
			"-audit-key", filepath.Join(keys, auditlog.Ed25519PubFile),
			"-mldsa-key", filepath.Join(keys, auditlog.MLDSAPubFile),
			"-region-keys", regionKeys, "-allow-unsigned-manifest")
	}
	var out string
	require.Eventually(t, func() bool { // the audit trail lags the commit by moments
		code, out = verify(export)
		if code != 0 {
			code, _ = fabricCLI(t, "decision", "export", "-url", f.URL(fabric.Auditor), "-id", id,
				"-token", f.Token(t, "t1", auth.RoleAuditor), "-out", export)
			require.Equal(t, 0, code)
			return false
		}
		return true
	}, 15*time.Second, 200*time.Millisecond, "the approved decision's export verifies: %s", out)
	for _, a := range approvers {
		require.Contains(t, out, "("+a+")", "each vote is checked")
	}

	raw, err := os.ReadFile(export)
	require.NoError(t, err)
	for _, c := range []struct{ from, to string }{
		{`"reason":"checked the diff"`, `"reason":"checked the dift"`},
		{`"decision":"approve"`, `"decision":"deny"`},
	} {
		require.Contains(t, string(raw), c.from)
		altered := filepath.Join(dir, "altered.json")
		require.NoError(t, os.WriteFile(altered, []byte(strings.Replace(string(raw), c.from, c.to, 1)), 0o600))
		code, out := verify(altered)
		require.Equal(t, 2, code, "an altered approval must not verify: %s", out)
		require.Contains(t, out, "approval")
	}
}

// TestApprovalReadsNeverWrite: the pending list, the change description, the proposal
// and the approval page change nothing (the gateway's deliverer and sweeper, and the
// audit relay, may commit their own work meanwhile; no read does).
func TestApprovalReadsNeverWrite(t *testing.T) {
	eachStore(t, withApprovalPolicy("2m", "1m"), func(t *testing.T, f *fabrictest.Fabric) {
		agent := client{f, f.Token(t, "t1", auth.RoleProposer)}
		p := agent.submit(t, `{"action":"scale","target":"svc-read","regions":["eu-west"],"parameters":{"replicas":11}}`)
		agent.await(t, p.ID, "PROPOSAL_STATUS_PENDING_APPROVAL")
		ana := enrol(t, f, "sre-ana", "t1", "sre")
		require.Eventually(t, func() bool { // the request's notification is out
			ns, err := f.Store().Approvals().ListNotifications(context.Background(), "t1", p.ID)
			require.NoError(t, err)
			return len(ns) > 0 && !ns[0].SentAt.IsZero()
		}, 10*time.Second, 50*time.Millisecond)

		var commits atomic.Int64
		var labels sync.Map
		stop, ok := store.Observe(f.Store(), func(ctx context.Context) {
			if !fabrictest.BackgroundCommit(ctx) {
				labels.Store(store.CommitLabel(ctx), true)
				commits.Add(1)
			}
		})
		require.True(t, ok)
		defer stop()
		before := stateTables(t, f.Store(), []string{p.ID})
		for _, r := range []fabrictest.Response{
			f.Do(t, http.MethodGet, fabric.HIL, "/pending/t1", ana.token, ""),
			f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+p.ID+"/change", ana.token, ""),
			f.Do(t, http.MethodGet, fabric.Coordinator, "/proposals/"+p.ID, ana.token, ""),
		} {
			require.Equal(t, http.StatusOK, r.Status, string(r.Body))
		}
		// The page, signed in with the approver's token as its session cookie.
		for _, path := range []string{"/ui/pending", "/ui/p/" + p.ID} {
			req, err := http.NewRequest(http.MethodGet, f.URL(fabric.HIL)+path, nil)
			require.NoError(t, err)
			req.AddCookie(&http.Cookie{Name: "df_session", Value: ana.token})
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.NoError(t, resp.Body.Close())
			require.Equal(t, http.StatusOK, resp.StatusCode, path)
			require.Equal(t, path, resp.Request.URL.Path, "signed in: not sent to the sign-in page")
			require.Contains(t, string(body), p.ID)
		}
		var seen []any
		labels.Range(func(k, _ any) bool { seen = append(seen, k); return true })
		require.Zero(t, commits.Load(), "reads committed writes (labels %v)", seen)
		require.Equal(t, before, stateTables(t, f.Store(), []string{p.ID}))
	})
}
