package replay_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/canonical"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/replay"
	"github.com/decision-fabric/fabric/internal/signing"
	"github.com/decision-fabric/fabric/internal/world"
)

const tenant = "t1"

// decision is a recorded decision of tenant t1: a scale of target by delta replicas in
// regions, at status with impact, accepted by every region under majority.
func decision(t testing.TB, target string, delta int, status coordinatorv1.ProposalStatus, impact string, regions ...string) replay.Record {
	t.Helper()
	params, err := structpb.NewStruct(map[string]any{"replicas_delta": delta})
	require.NoError(t, err)
	m := &typesv1.Manifest{Action: "scale", Target: target, Regions: regions, Impact: impact, Parameters: params}
	_, sum, err := manifestpkg.Canonical(m)
	require.NoError(t, err)
	states := map[string]any{}
	for _, r := range regions {
		states[r] = world.InitialState(tenant, r, target)
	}
	pre, err := canonical.Marshal(map[string]any{"tenant_id": tenant, "target": target, "regions": states})
	require.NoError(t, err)
	cert := &quorum.Certificate{ProposalDigest: sum, Round: 1, Rule: quorum.RuleMajority, Outcome: quorum.OutcomeAgreed}
	for _, r := range regions {
		cert.RegionKeys = append(cert.RegionKeys, quorum.RegionKey{Region: r, Weight: 1})
		cert.Votes = append(cert.Votes, quorum.Vote{Region: r, Round: 1, Verdict: quorum.VerdictAccept})
	}
	p := &coordinatorv1.Proposal{
		Id: "01JTESTAAAAAAAAAAAAAAAAAAA", TenantId: tenant, Status: status, Manifest: m, ManifestSha256: sum,
		Impact: impact, CreatedBy: "agent", CreatedAt: timestamppb.New(time.Unix(1_700_000_000, 0)),
		PreStateSha256: canonical.SHA256Hex(pre),
		Votes:          &coordinatorv1.VoteSummary{Outcome: quorum.OutcomeAgreed, Accept: int32(len(regions))},
		Policy:         &coordinatorv1.PolicyDecision{Quorum: quorum.RuleMajority, ComputedImpact: impact},
	}
	if impact == policy.ImpactHigh {
		p.Policy.ApprovalRequired, p.Policy.ApprovalsRequired = true, 1
	}
	return replay.Record{Proposal: p, PreState: world.Snapshot{JSON: pre, SHA256: p.PreStateSha256}, Votes: cert}
}

func candidate(t testing.TB, yaml string) replay.Candidate {
	t.Helper()
	e, err := policy.Parse([]byte(yaml), "test")
	require.NoError(t, err)
	return replay.Candidate{Policy: e}
}

const strict = `version: 1
defaults:
  quorum: majority
  approvals_required: 1
  impact_rules:
    - name: two-replicas-is-high
      when: abs_replica_delta >= 2
      impact: high
      reason: "changes replicas by {replica_delta}"
`

func approve(approver string) *typesv1.Approval {
	return &typesv1.Approval{Approver: approver, Decision: "approve", Roles: []string{"approver"},
		DecidedAt: timestamppb.New(time.Unix(1_700_000_100, 0))}
}

func TestRedecideUnderAStricterPolicy(t *testing.T) {
	enacted := coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED
	cand := candidate(t, strict)

	small := replay.Redecide(decision(t, "svc", 1, enacted, "low", "eu-west"), cand)
	require.False(t, small.GetChanged(), small.GetReasons())
	require.Equal(t, replay.OutcomeProceed, small.GetCandidateOutcome())
	require.Equal(t, "ENACTED", small.GetRecordedOutcome())
	require.Equal(t, "low", small.GetCandidateImpact())
	require.True(t, small.GetQuorumReached())

	big := replay.Redecide(decision(t, "svc", 3, enacted, "low", "eu-west"), cand)
	require.True(t, big.GetChanged())
	require.Equal(t, replay.OutcomePending, big.GetCandidateOutcome())
	require.Equal(t, "high", big.GetCandidateImpact())
	require.EqualValues(t, 1, big.GetApprovalsRequired())
	require.Contains(t, strings.Join(big.GetReasons(), "\n"), `rule "two-replicas-is-high": changes replicas by 3 → high`)
	require.Contains(t, big.GetReasons()[0], "changed: recorded goes through, candidate approval not met")

	// The same change, approved by a person when it was decided: still goes through.
	approved := decision(t, "svc", 3, enacted, "high", "eu-west")
	approved.Proposal.Approvals = []*typesv1.Approval{approve("ana")}
	res := replay.Redecide(approved, cand)
	require.False(t, res.GetChanged(), res.GetReasons())
	require.Equal(t, replay.OutcomeApproved, res.GetCandidateOutcome())
	require.EqualValues(t, 1, res.GetApprovalsRecorded())

	// Two approvals now: the one recorded is not enough.
	two := candidate(t, strings.Replace(strict, "approvals_required: 1", "approvals_required: 2", 1))
	res = replay.Redecide(approved, two)
	require.True(t, res.GetChanged())
	require.Equal(t, replay.OutcomePending, res.GetCandidateOutcome())
	require.EqualValues(t, 2, res.GetApprovalsRequired())

	// The proposer's own approval never counts.
	self := decision(t, "svc", 3, enacted, "high", "eu-west")
	self.Proposal.Approvals = []*typesv1.Approval{approve("agent")}
	res = replay.Redecide(self, cand)
	require.Equal(t, replay.OutcomePending, res.GetCandidateOutcome(), res.GetReasons())
}

func TestRedecideRefusalsAndFailClosed(t *testing.T) {
	enacted := coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED
	rec := decision(t, "svc", 5, enacted, "low", "eu-west")

	// A cost cap the change is over: refused, the policy's words kept.
	capped := replay.Redecide(rec, candidate(t, "version: 1\ndefaults:\n  max_monthly_cost_delta: 1\n  impact_rules: []\n"))
	require.Equal(t, replay.OutcomeRefused, capped.GetCandidateOutcome())
	require.True(t, capped.GetChanged())
	require.Contains(t, strings.Join(capped.GetReasons(), "\n"), "cap")

	// A rule that fails at run time on this decision: the strictest outcome, reported.
	failing := candidate(t, `version: 1
defaults:
  impact_rules:
    - name: reads-a-missing-parameter
      when: int(parameters["replicas"]) > 3
      impact: medium
      reason: "x"
`)
	res := replay.Redecide(rec, failing)
	require.Equal(t, replay.OutcomeRefused, res.GetCandidateOutcome(), res.GetReasons())
	require.Equal(t, "high", res.GetCandidateImpact())
	require.True(t, res.GetChanged())
	require.Contains(t, strings.Join(res.GetReasons(), "\n"), "fails closed")

	// A pre-state the change cannot be planned against: impact unknown → high.
	broken := decision(t, "svc", 1, enacted, "low", "eu-west")
	broken.PreState = world.Snapshot{JSON: []byte(`{"regions":{"eu-west":{"replicas":1}}}`)}
	broken.Proposal.Manifest.Parameters, _ = structpb.NewStruct(map[string]any{"replicas_delta": -5})
	res = replay.Redecide(broken, candidate(t, strict))
	require.Equal(t, "high", res.GetCandidateImpact(), res.GetReasons())
	require.Contains(t, strings.Join(res.GetReasons(), "\n"), "impact unknown")
}

func TestRedecideRecountsTheVotes(t *testing.T) {
	enacted := coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED
	rec := decision(t, "svc", 1, enacted, "low", "eu-west", "us-east", "ap-south")
	rec.Votes.Votes[2].Verdict = quorum.VerdictReject // 2 of 3 accepted

	// The recorded rule and regions: still agreed.
	res := replay.Redecide(rec, replay.Candidate{})
	require.False(t, res.GetChanged(), res.GetReasons())
	require.True(t, res.GetQuorumReached())

	// Unanimity asked by the candidate: not reached.
	res = replay.Redecide(rec, candidate(t, "version: 1\ndefaults:\n  quorum: unanimous\n  impact_rules: []\n"))
	require.Equal(t, replay.OutcomeRejected, res.GetCandidateOutcome())
	require.True(t, res.GetChanged())
	require.False(t, res.GetQuorumReached())
	require.Contains(t, strings.Join(res.GetReasons(), "\n"), "unanimous quorum not reached")

	// Dropping us-east: 1 accept of 2 is no majority.
	res = replay.Redecide(rec, replay.Candidate{Regions: []replay.Region{{Name: "eu-west"}, {Name: "ap-south"}}})
	require.Equal(t, replay.OutcomeRejected, res.GetCandidateOutcome())
	require.Contains(t, strings.Join(res.GetReasons(), "\n"), "votes of us-east not counted")

	// Weighting eu-west: a weighted majority again.
	res = replay.Redecide(rec, replay.Candidate{
		Policy:  candidate(t, "version: 1\ndefaults:\n  quorum: weighted\n  impact_rules: []\n").Policy,
		Regions: []replay.Region{{Name: "eu-west", Weight: 5}, {Name: "ap-south"}},
	})
	require.Equal(t, replay.OutcomeProceed, res.GetCandidateOutcome(), res.GetReasons())

	// A region added by the candidate never voted: the quorum cannot be proven.
	solo := decision(t, "svc", 1, enacted, "low", "eu-west")
	res = replay.Redecide(solo, replay.Candidate{Regions: []replay.Region{{Name: "eu-west"}, {Name: "us-east"}}})
	require.Equal(t, replay.OutcomeRejected, res.GetCandidateOutcome())
	require.Contains(t, strings.Join(res.GetReasons(), "\n"), "cannot be asked now")

	// No final round recorded (expired negotiation): the vote is not recounted.
	expired := decision(t, "svc", 1, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_EXPIRED, "low", "eu-west")
	expired.Votes = nil
	res = replay.Redecide(expired, candidate(t, strict))
	require.Nil(t, res.QuorumReached)
	require.False(t, res.GetChanged(), res.GetReasons())
	require.Equal(t, "EXPIRED", res.GetCandidateOutcome())

	// An enacted decision whose signed votes did not verify: never re-decided as if its
	// quorum held (that would report PROCEED on votes nobody could check).
	unverified := decision(t, "svc", 1, enacted, "low", "eu-west")
	unverified.Votes = nil
	res = replay.Redecide(unverified, replay.Candidate{})
	require.Equal(t, replay.OutcomeError, res.GetCandidateOutcome(), res.GetReasons())
	require.False(t, res.GetChanged())
	require.Contains(t, strings.Join(res.GetReasons(), "\n"), "did not verify")
}

func TestVerifyReportsWhatDoesNotVerify(t *testing.T) {
	rec := decision(t, "svc", 1, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_REJECTED, "low", "eu-west")
	dr := &coordinatorv1.DecisionRecord{Proposal: rec.Proposal, PreState: rec.PreState.JSON, PreStateSha256: rec.PreState.SHA256}

	// A pre-state that is not the recorded one.
	tampered := &coordinatorv1.DecisionRecord{Proposal: rec.Proposal, PreState: append([]byte(nil), rec.PreState.JSON...), PreStateSha256: rec.PreState.SHA256}
	tampered.PreState[len(tampered.PreState)-2] ^= 1
	got := replay.Verify(tampered, replay.Evidence{}, bundle.Keys{})
	require.Contains(t, got.VerifyError, "pre-state")

	// No export: reported, the decision is still re-decided from the record.
	got = replay.Verify(dr, replay.Evidence{}, bundle.Keys{})
	require.Contains(t, got.VerifyError, "decision export")
	require.Nil(t, got.Votes)
	res := replay.Redecide(got, replay.Candidate{})
	require.False(t, res.GetVerified())
	require.NotEmpty(t, res.GetVerificationError())

	// A quorum certificate: used only when its signatures verify against the registry.
	k, err := signing.GenerateEd25519()
	require.NoError(t, err)
	payload, err := quorum.VotePayload(rec.Proposal.GetManifestSha256(), 1, "eu-west", quorum.VerdictReject)
	require.NoError(t, err)
	sig, err := k.Sign(payload)
	require.NoError(t, err)
	cert := &negotiatorv1.QuorumCertificate{ProposalDigest: rec.Proposal.GetManifestSha256(), Round: 1, Rule: quorum.RuleMajority,
		Outcome: quorum.OutcomeRejected,
		Votes:   []*negotiatorv1.QuorumCertificateVote{{Region: "eu-west", Round: 1, Verdict: quorum.VerdictReject, Signature: sig, KeyId: k.KeyID()}},
		RegionKeys: []*negotiatorv1.QuorumCertificateRegionKey{{Region: "eu-west", KeyId: k.KeyID(),
			PublicKeyPem: string(k.PublicKeyPEM()), Weight: 1}}}
	keys := bundle.Keys{Regions: map[string][]byte{"eu-west": k.PublicKeyPEM()}}
	got = replay.Verify(dr, replay.Evidence{Negotiation: &negotiatorv1.Negotiation{QuorumCertificate: cert}}, keys)
	require.NotNil(t, got.Votes)
	require.Equal(t, quorum.OutcomeRejected, got.Votes.Outcome)

	other, err := signing.GenerateEd25519()
	require.NoError(t, err)
	got = replay.Verify(dr, replay.Evidence{Negotiation: &negotiatorv1.Negotiation{QuorumCertificate: cert}}, bundle.Keys{Regions: map[string][]byte{"eu-west": other.PublicKeyPEM()}})
	require.Nil(t, got.Votes, "a certificate that does not verify is not used")
	require.Contains(t, got.VerifyError, "quorum certificate")
}

func TestParseRefusesBadRequests(t *testing.T) {
	ok := "01JTESTAAAAAAAAAAAAAAAAAAA"
	from, to := timestamppb.New(time.Unix(1_700_000_000, 0)), timestamppb.New(time.Unix(1_700_003_600, 0))
	many := make([]string, replay.MaxProposals+1)
	for i := range many {
		many[i] = ok
	}
	for name, tc := range map[string]struct {
		req  *canaryv1.ReplayRequest
		code codes.Code
		msg  string
	}{
		"nothing named":   {&canaryv1.ReplayRequest{}, codes.InvalidArgument, "name the decisions"},
		"both":            {&canaryv1.ReplayRequest{ProposalIds: []string{ok}, From: from, To: to}, codes.InvalidArgument, "one or the other"},
		"too many":        {&canaryv1.ReplayRequest{ProposalIds: many}, codes.InvalidArgument, "at most 100"},
		"not an id":       {&canaryv1.ReplayRequest{ProposalIds: []string{"p1"}}, codes.InvalidArgument, "proposal_ids[0]"},
		"repeated":        {&canaryv1.ReplayRequest{ProposalIds: []string{ok, ok}}, codes.InvalidArgument, "repeated"},
		"half a window":   {&canaryv1.ReplayRequest{From: from}, codes.InvalidArgument, "both are required"},
		"window reversed": {&canaryv1.ReplayRequest{From: to, To: from}, codes.InvalidArgument, "must be after"},
		"window too long": {&canaryv1.ReplayRequest{From: from, To: timestamppb.New(from.AsTime().Add(32 * 24 * time.Hour))}, codes.InvalidArgument, "at most"},
		"policy too big":  {&canaryv1.ReplayRequest{ProposalIds: []string{ok}, CandidatePolicy: strings.Repeat("#", replay.MaxPolicyBytes+1)}, codes.InvalidArgument, "at most 65536"},
		"policy broken":   {&canaryv1.ReplayRequest{ProposalIds: []string{ok}, CandidatePolicy: "version: 1\ndefaults:\n  quorum: most\n"}, codes.InvalidArgument, "candidate_policy: line 3"},
		"bad region":      {&canaryv1.ReplayRequest{ProposalIds: []string{ok}, CandidateRegions: []*canaryv1.ReplayRegion{{Region: "EU West"}}}, codes.InvalidArgument, "candidate_regions[0].region"},
		"region twice":    {&canaryv1.ReplayRequest{ProposalIds: []string{ok}, CandidateRegions: []*canaryv1.ReplayRegion{{Region: "eu-west"}, {Region: "eu-west"}}}, codes.InvalidArgument, "twice"},
		"bad weight":      {&canaryv1.ReplayRequest{ProposalIds: []string{ok}, CandidateRegions: []*canaryv1.ReplayRegion{{Region: "eu-west", Weight: -1}}}, codes.InvalidArgument, "weight"},
		"model":           {&canaryv1.ReplayRequest{ProposalIds: []string{ok}, CandidateModel: "gbm"}, codes.Unimplemented, "gates no outcome"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := replay.Parse(tc.req)
			require.Equal(t, tc.code, status.Code(err), "%v", err)
			require.Contains(t, status.Convert(err).Message(), tc.msg)
		})
	}

	sel, cand, err := replay.Parse(&canaryv1.ReplayRequest{From: from, To: to, CandidatePolicy: strict,
		CandidateRegions: []*canaryv1.ReplayRegion{{Region: "eu-west", Weight: 2}}})
	require.NoError(t, err)
	require.Equal(t, from.AsTime(), sel.From)
	require.NotNil(t, cand.Policy)
	require.Equal(t, []replay.Region{{Name: "eu-west", Weight: 2}}, cand.Regions)
	require.True(t, strings.HasPrefix(cand.PolicyDigest(), "sha256:"))
}

func TestTableAlignsColumns(t *testing.T) {
	enacted := coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED
	cand := candidate(t, strict)
	rs := []*canaryv1.ReplayResult{
		replay.Redecide(decision(t, "svc-a", 1, enacted, "low", "eu-west"), cand),
		replay.Redecide(decision(t, "a-much-longer-target-name", 3, enacted, "low", "eu-west"), cand),
	}
	out := replay.Table(rs, []string{"01JTESTBBBBBBBBBBBBBBBBBBB"})
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	require.Len(t, lines, 4, out)
	col := strings.Index(lines[0], "CANDIDATE")
	require.Equal(t, "PROCEED", lines[1][col:col+7], out)
	require.Equal(t, "PENDING_APPROVAL", lines[2][col:col+16], out)
	require.Equal(t, "01JTESTBBBBBBBBBBBBBBBBBBB: not found", lines[3])
}
