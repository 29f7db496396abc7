package coordinator

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	scorerv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/scorer/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/actions"
	"github.com/decision-fabric/fabric/internal/approval"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/classify"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/store"
	"github.com/decision-fabric/fabric/internal/world"
)

// fakeNegotiator agrees at once, on the counter-offer the test set for the proposal's
// target (nil: the submitted manifest).
type fakeNegotiator struct {
	st       store.Store
	mu       sync.Mutex
	counters map[string]*typesv1.Manifest // by target
}

func (n *fakeNegotiator) counter(target string, m *typesv1.Manifest) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.counters[target] = m
}

// Start agrees at once (the fake keeps no negotiations: Status cannot find one).
func (n *fakeNegotiator) Start(_ context.Context, req NegotiationRequest) (*negotiatorv1.Negotiation, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &negotiatorv1.Negotiation{Id: req.NegotiationID, State: negotiatorv1.NegotiationState_NEGOTIATION_STATE_AGREED,
		FinalManifest: n.counters[req.Manifest.GetTarget()], Reason: "agreed"}, nil
}

func (n *fakeNegotiator) Status(_ context.Context, _, id string) (*negotiatorv1.Negotiation, error) {
	return nil, status.Errorf(codes.NotFound, "negotiation %s not found", id)
}

func (n *fakeNegotiator) Wait(ctx context.Context, tenant, id string) (*negotiatorv1.Negotiation, error) {
	return n.Status(ctx, tenant, id)
}

type fakeScorer struct{}

func (fakeScorer) Score(context.Context, ScoreInput) (*scorerv1.ScoreResponse, error) {
	return &scorerv1.ScoreResponse{Confidence: 0.9}, nil
}

// Policies the property test classifies and enacts with: the default, one that calls
// any change of replicas high, and one without rules that wants two approvers.
var testPolicies = map[string]string{
	"strict": "version: 1\ndefaults:\n  impact_rules:\n    - name: any-replica-change\n      when: abs_replica_delta >= 1\n      impact: high\n",
	"lax2":   "version: 1\ndefaults:\n  approvals_required: 2\n",
}

// fabricUnderTest is one store and world, seen by one coordinator per policy, all
// negotiating with the same fake regions.
type fabricUnderTest struct {
	st       store.Store
	world    *world.Simulated
	neg      *fakeNegotiator
	services map[string]*Service
	engines  map[string]*policy.Engine
	targets  atomic.Int64
}

func newFabricUnderTest(t testing.TB) *fabricUnderTest {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })
	f := &fabricUnderTest{st: st, world: world.NewSimulated(st), neg: &fakeNegotiator{st: st, counters: map[string]*typesv1.Manifest{}},
		services: map[string]*Service{}, engines: map[string]*policy.Engine{"default": policy.Default()}}
	for name, src := range testPolicies {
		e, err := policy.Parse([]byte(src), name+".yaml")
		require.NoError(t, err)
		f.engines[name] = e
	}
	for name, e := range f.engines {
		s, err := New(Deps{Store: st, World: f.world, Policy: e, Negotiator: f.neg, Scorer: fakeScorer{},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		f.services[name] = s
	}
	return f
}

// enactCase is one random scenario: a manifest, what the regions agree on, which
// policy classifies it at submission and which at enactment, and whether (and by how
// many) approvers approve it when asked.
type enactCase struct {
	Manifest  *typesv1.Manifest
	Counter   *typesv1.Manifest // nil: agreed as submitted
	Submit    string            // policy name
	Enact     string
	Approvers int // 0: never approved
}

func (c enactCase) String() string {
	m, _ := protojson.Marshal(c.Manifest)
	k, _ := protojson.Marshal(c.Counter)
	return fmt.Sprintf("manifest %s, agreed %s, policies %s/%s, approvers %d", m, k, c.Submit, c.Enact, c.Approvers)
}

var policyNames = []string{"default", "strict", "lax2"}

// randomCase draws a case. Counter-offers are not only what honest regions send
// (fewer replicas): a region may raise a count, change the verb, the regions or the
// kind of change, or send a value no schema allows.
func randomCase(r *rand.Rand) enactCase {
	regions := []string{"eu-west", "us-east", "ap-south"}[:1+r.IntN(3)]
	m := &typesv1.Manifest{Target: "svc", Regions: regions, Impact: []string{"", "", "low", "medium", "high"}[r.IntN(5)]}
	params := map[string]any{}
	switch r.IntN(6) {
	case 0:
		m.Action = actions.ReduceCost
		params["replicas_delta"] = float64(-1 - r.IntN(12))
	case 1:
		m.Action = actions.Configure
		params["config"] = map[string]any{"flag": r.IntN(2) == 1}
	case 2:
		m.Action = actions.Scale
		params["replicas_delta"] = float64(r.IntN(25) - 12)
	default:
		m.Action = actions.Scale
		params["replicas"] = float64(r.IntN(60))
	}
	m.Parameters, _ = structpb.NewStruct(params)
	c := enactCase{Manifest: m, Submit: policyNames[r.IntN(3)], Enact: policyNames[r.IntN(3)]}
	if r.IntN(3) > 0 {
		c.Approvers = 1 + r.IntN(2)
	}
	if r.IntN(4) == 0 {
		return c // agreed as submitted
	}
	k := proto.Clone(m).(*typesv1.Manifest)
	switch r.IntN(8) {
	case 0:
		k.Parameters.Fields["replicas"] = structpb.NewNumberValue(float64(r.IntN(1001)))
		delete(k.Parameters.Fields, "replicas_delta")
	case 1:
		k.Parameters.Fields["replicas"] = structpb.NewNumberValue([]float64{1e308, -1, 2.5, math.Inf(1), 5000}[r.IntN(5)])
	case 2:
		k.Parameters.Fields["replicas_delta"] = structpb.NewNumberValue(float64(r.IntN(41) - 20))
		delete(k.Parameters.Fields, "replicas")
	case 3:
		k.Action = []string{"wipe", "drop-database", actions.Scale, actions.ReduceCost}[r.IntN(4)]
	case 4:
		k.Regions = []string{"eu-west", "us-east", "ap-south", "eu-central"}[:1+r.IntN(4)]
	case 5:
		k.Impact = "low"
	default:
		// An honest counter: fewer replicas.
		if v, ok := k.Parameters.Fields["replicas"]; ok {
			k.Parameters.Fields["replicas"] = structpb.NewNumberValue(math.Floor(v.GetNumberValue() * r.Float64()))
		}
	}
	c.Counter = k
	return c
}

// authorised is the impact and approvers a proposal was enacted under.
type authorised struct {
	impact    string
	approvers int
}

// run plays c: submit, agree, approve when asked (as the hil-gateway will), dry run,
// enact. It returns the enactment's response, or nil when the proposal was not
// enacted, and what the proposal was authorised at.
func (f *fabricUnderTest) run(t testing.TB, c enactCase) (*coordinatorv1.EnactProposalResponse, authorised) {
	t.Helper()
	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "user:p", TenantID: "t1", Roles: []string{auth.RoleProposer}})
	target := fmt.Sprintf("svc-%d", f.targets.Add(1))
	c.Manifest.Target = target
	if c.Counter != nil {
		c.Counter.Target = target
	}
	f.neg.counter(target, c.Counter)
	req := &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: c.Manifest}
	if validateSubmit(req) != nil {
		return nil, authorised{}
	}
	resp, err := f.services[c.Submit].SubmitProposal(ctx, req)
	if err != nil {
		require.NotEqual(t, codes.Unknown, status.Code(err), "%v", err)
		return nil, authorised{}
	}
	id := resp.GetProposal().GetId()
	awaitSettled(t, f.st, "t1", id)
	enactor := f.services[c.Enact]
	var auth authorised
	for range 3 {
		p, err := f.st.Proposals().Get(ctx, "t1", id)
		require.NoError(t, err)
		auth.impact = p.Impact
		if p.Status == stPendingApproval {
			if c.Approvers == 0 {
				return nil, auth
			}
			// What the hil-gateway does: record each approver's vote.
			svc := serviceContext("t1")
			for i := range c.Approvers {
				_, err := enactor.RecordApproval(svc, &coordinatorv1.RecordApprovalRequest{ProposalId: id, TenantId: "t1",
					Approval: &typesv1.Approval{Approver: fmt.Sprintf("approver-%d", i), Roles: []string{approval.RoleApprover},
						Decision: "approve", MfaMethod: "totp", MfaVerified: true, Channel: "api"}})
				if status.Code(err) == codes.FailedPrecondition {
					break // approved already: the rules asked for fewer
				}
				require.NoError(t, err)
			}
			auth.approvers = c.Approvers
			if _, err := enactor.EnactProposal(ctx, &coordinatorv1.EnactProposalRequest{Id: id, DryRun: true}); err != nil {
				return nil, auth
			}
		}
		out, err := enactor.EnactProposal(ctx, &coordinatorv1.EnactProposalRequest{Id: id})
		if err == nil {
			require.Equal(t, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_ENACTED, out.GetProposal().GetStatus())
			return out, auth
		}
		require.Contains(t, []codes.Code{codes.FailedPrecondition, codes.Aborted}, status.Code(err), "%v", err)
	}
	return nil, auth
}

// checkEnacted is the property: the change that was made, classified from the world's
// own pre and post states by the policy in force at enactment, is never above what
// was authorised — not a higher impact, and not more approvers than were recorded.
func (f *fabricUnderTest) checkEnacted(t testing.TB, c enactCase, out *coordinatorv1.EnactProposalResponse, a authorised) {
	t.Helper()
	pre, err := jsonSnapshot(out.GetPre())
	require.NoError(t, err)
	post, err := jsonSnapshot(out.GetPost())
	require.NoError(t, err)
	diff, err := world.Diff(pre, post)
	require.NoError(t, err)
	m := out.GetProposal().GetAgreedManifest()
	if m == nil {
		m = out.GetProposal().GetManifest()
	}
	in := policy.Input{TenantID: "t1", Action: m.GetAction(), Target: m.GetTarget(), DeclaredImpact: m.GetImpact(),
		Regions: m.GetRegions(), Parameters: m.GetParameters().AsMap(), UnknownAction: !actions.Known(m.GetAction()),
		BlastRadius: math.Min(1, float64(max(len(m.GetRegions()), 1))/classify.ReferenceRegions)}
	in.ReplicaDelta, in.CostDeltaMonthly = world.Totals(diff)
	d, err := f.engines[c.Enact].Evaluate(in)
	require.NoError(t, err, "a change the policy refuses was enacted: %s", c)
	require.LessOrEqual(t, policy.ImpactRank(d.Impact), policy.ImpactRank(a.impact), "enacted at %s impact, authorised at %s: %s", d.Impact, a.impact, c)
	if d.ApprovalRequired {
		require.GreaterOrEqual(t, a.approvers, max(d.ApprovalsRequired, 1), "enacted without the approvers the change needs: %s", c)
	}
}

func jsonSnapshot(s *typesv1.Snapshot) (world.Snapshot, error) {
	raw, err := protojson.Marshal(s.GetState())
	return world.Snapshot{JSON: raw, SHA256: s.GetSha256()}, err
}

// TestNothingEnactedAboveApproval is the property test of fail-closed classification:
// random manifests, random counter-offers (honest and not), random policies at
// submission and at enactment, random approvals. Whatever is enacted is, measured on
// the world, never of higher impact than what was approved (or classified, when no
// approval was needed). Fixed seed; `make fuzz` runs FuzzNothingEnactedAboveApproval
// for longer.
func TestNothingEnactedAboveApproval(t *testing.T) {
	t.Parallel()
	f := newFabricUnderTest(t)
	r := rand.New(rand.NewPCG(9, 1))
	enacted, held := 0, 0
	for range 300 {
		c := randomCase(r)
		out, a := f.run(t, c)
		if out == nil {
			held++
			continue
		}
		enacted++
		f.checkEnacted(t, c, out, a)
	}
	t.Logf("%d enacted, %d refused or held for approval", enacted, held)
	require.Greater(t, enacted, 30, "the generator must reach enactment often enough to test something")
	require.Greater(t, held, 30)
}

// FuzzNothingEnactedAboveApproval is TestNothingEnactedAboveApproval driven by the
// fuzzer: each input seeds one random case.
func FuzzNothingEnactedAboveApproval(f *testing.F) {
	for i := range uint64(8) {
		f.Add(i, i*7+1)
	}
	fab := newFabricUnderTest(f)
	f.Fuzz(func(t *testing.T, s1, s2 uint64) {
		c := randomCase(rand.New(rand.NewPCG(s1, s2)))
		if out, a := fab.run(t, c); out != nil {
			fab.checkEnacted(t, c, out, a)
		}
	})
}

// withService adds a coordinator for policy src (named name) with an auditor.
func (f *fabricUnderTest) withService(t testing.TB, name, src string) (*Service, *flakyAuditor) {
	t.Helper()
	e, err := policy.Parse([]byte(src), name+".yaml")
	require.NoError(t, err)
	aud := &flakyAuditor{}
	s, err := New(Deps{Store: f.st, World: f.world, Policy: e, Negotiator: f.neg, Scorer: fakeScorer{}, Audit: aud,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	f.services[name], f.engines[name] = s, e
	return s, aud
}

func proposerContext() context.Context {
	return auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "user:p", TenantID: "t1", Roles: []string{auth.RoleProposer}})
}

func manifest(t testing.TB, raw string) *typesv1.Manifest {
	t.Helper()
	m := &typesv1.Manifest{}
	require.NoError(t, protojson.Unmarshal([]byte(raw), m))
	return m
}

// A change the world refuses to plan has no known size: it is high impact with the
// reason, not the low a zero delta used to give.
func TestPlanFailureIsHighImpact(t *testing.T) {
	t.Parallel()
	f := newFabricUnderTest(t)
	ctx := proposerContext()
	f.neg.counter("shrink", nil)
	resp, err := f.services["default"].SubmitProposal(ctx, &coordinatorv1.SubmitProposalRequest{TenantId: "t1",
		Manifest: manifest(t, `{"action":"scale","target":"shrink","regions":["eu-west"],"parameters":{"replicas_delta":-50}}`)})
	require.NoError(t, err)
	p := settled(t, f.services["default"], resp.GetProposal().GetId())
	require.Equal(t, policy.ImpactHigh, p.GetImpact())
	require.True(t, p.GetDryRun())
	require.True(t, p.GetPolicy().GetApprovalRequired())
	require.Contains(t, p.GetPolicy().GetReasons()[0], "impact unknown: the dry-run plan failed: ")
	require.Equal(t, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_PENDING_APPROVAL, p.GetStatus())
}

// A policy rule that fails at run time classifies nothing: at submission the proposal
// is refused (nothing stored); after negotiation the agreed change is high impact.
func TestPolicyEvaluationErrorFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFabricUnderTest(t)
	s, _ := f.withService(t, "reads-owner", "version: 1\ndefaults:\n  impact_rules:\n    - name: owner-x\n      when: parameters.owner == \"x\"\n      impact: medium\n")
	ctx := proposerContext()

	_, err := s.SubmitProposal(ctx, &coordinatorv1.SubmitProposalRequest{TenantId: "t1",
		Manifest: manifest(t, `{"action":"scale","target":"a","regions":["eu-west"],"parameters":{"replicas_delta":1}}`)})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "the tenant's policy cannot classify this proposal")
	list, err := f.st.Proposals().List(ctx, "t1", "", 10)
	require.NoError(t, err)
	require.Empty(t, list, "nothing stored")

	// The regions drop the parameter the rule reads.
	f.neg.counter("b", manifest(t, `{"action":"scale","target":"b","regions":["eu-west"],"parameters":{"replicas_delta":1}}`))
	resp, err := s.SubmitProposal(ctx, &coordinatorv1.SubmitProposalRequest{TenantId: "t1",
		Manifest: manifest(t, `{"action":"scale","target":"b","regions":["eu-west"],"parameters":{"replicas_delta":1,"owner":"y"}}`)})
	require.NoError(t, err)
	p := settled(t, s, resp.GetProposal().GetId())
	require.Equal(t, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_PENDING_APPROVAL, p.GetStatus())
	require.Equal(t, policy.ImpactHigh, p.GetImpact())
	require.Contains(t, p.GetPolicy().GetReasons()[0], "reclassified at agreement: the agreed change is high impact (classified low before)")
	require.Contains(t, p.GetPolicy().GetReasons()[1], "impact unknown: classifying the change at agreement failed: ")
}

// An agreed change the policy refuses (here: over the cost cap) is REJECTED, with
// the refusal in the reason and the audit trail.
func TestAgreedChangeThePolicyRefusesIsRejected(t *testing.T) {
	t.Parallel()
	f := newFabricUnderTest(t)
	s, aud := f.withService(t, "capped", "version: 1\ndefaults:\n  max_monthly_cost_delta: 200\n")
	ctx := proposerContext()
	f.neg.counter("c", manifest(t, `{"action":"scale","target":"c","regions":["eu-west"],"parameters":{"replicas":900}}`))
	resp, err := s.SubmitProposal(ctx, &coordinatorv1.SubmitProposalRequest{TenantId: "t1",
		Manifest: manifest(t, `{"action":"scale","target":"c","regions":["eu-west"],"parameters":{"replicas_delta":1}}`)})
	require.NoError(t, err)
	p := settled(t, s, resp.GetProposal().GetId())
	require.Equal(t, coordinatorv1.ProposalStatus_PROPOSAL_STATUS_REJECTED, p.GetStatus())
	require.Contains(t, p.GetReason(), "the regions agreed on a change the policy refuses: estimated cost change")
	// The audit events are delivered right after the commit the test saw.
	require.Eventually(t, func() bool {
		return slices.Contains(aud.keys(), fmt.Sprintf("%s:2:%s:%s", p.GetId(), eventReclassified, stageAgreement))
	}, 10*time.Second, 5*time.Millisecond, "%v", aud.keys())
}

// A proposal recorded before agreements were classified (stored SCORED at low impact
// with an agreed manifest of 40 replicas, the attack of issue #9) is classified again
// at enactment: it is not enacted, it waits for approval, and the reclassification is
// audited.
func TestEnactmentReclassifiesTheExactChange(t *testing.T) {
	t.Parallel()
	f := newFabricUnderTest(t)
	s, aud := f.withService(t, "audited", "version: 1\ndefaults:\n  impact_rules:\n    - name: big\n      when: abs_replica_delta >= 10\n      impact: high\n")
	ctx := proposerContext()
	pre, err := f.world.Read(ctx, "t1", "svc", []string{"eu-west"})
	require.NoError(t, err)
	record, err := decisionJSON(&coordinatorv1.Proposal{
		Policy:         &coordinatorv1.PolicyDecision{ComputedImpact: policy.ImpactLow, Quorum: policy.QuorumMajority},
		AgreedManifest: manifest(t, `{"action":"scale","target":"svc","regions":["eu-west"],"parameters":{"replicas":40}}`),
	})
	require.NoError(t, err)
	p, _, err := f.st.Proposals().Create(ctx, &store.Proposal{ID: newID(time.Now()), TenantID: "t1", Status: stScored, Impact: policy.ImpactLow,
		Manifest: []byte(`{"action":"scale","target":"svc","regions":["eu-west"],"parameters":{"replicas":5000}}`), PreStateSHA256: pre.SHA256,
		Decision: record, Version: 1})
	require.NoError(t, err)

	_, err = s.EnactProposal(ctx, &coordinatorv1.EnactProposalRequest{Id: p.ID})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	require.ErrorContains(t, err, "reclassified at enactment: the change to enact is high impact (classified low before) → approval required")
	now, err := f.world.Read(ctx, "t1", "svc", []string{"eu-west"})
	require.NoError(t, err)
	require.Equal(t, pre.SHA256, now.SHA256, "nothing was applied")
	got, err := f.st.Proposals().Get(ctx, "t1", p.ID)
	require.NoError(t, err)
	require.Equal(t, stPendingApproval, got.Status)
	require.Equal(t, policy.ImpactHigh, got.Impact)
	require.True(t, got.DryRun)
	require.Contains(t, aud.keys(), fmt.Sprintf("%s:1:%s:%s", p.ID, eventReclassified, stageEnactment))
	require.Contains(t, aud.keys(), fmt.Sprintf("%s:2:proposal.pending_approval", p.ID))

	_, err = s.EnactProposal(ctx, &coordinatorv1.EnactProposalRequest{Id: p.ID})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.ErrorContains(t, err, "approvals (")
}

// Approvers count once each, however often recorded, and only as the rules count
// them: a name in the legacy approvers list counts for nothing.
func TestApproversCountOnce(t *testing.T) {
	t.Parallel()
	s := &Service{deps: Deps{DecisionTimeout: time.Minute}}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &store.Proposal{Impact: policy.ImpactHigh, CreatedBy: "agent", CreatedAt: created}
	vote := func(who string, at time.Duration) *typesv1.Approval {
		return &typesv1.Approval{Approver: who, Roles: []string{auth.RoleApprover}, Decision: "approve", DecidedAt: timestamppb.New(created.Add(at))}
	}
	d := &coordinatorv1.Proposal{Policy: &coordinatorv1.PolicyDecision{ApprovalRequired: true, ApprovalsRequired: 2},
		ApprovalDeadline: timestamppb.New(created.Add(time.Hour)),
		Approvers:        []string{"alice", "bob"},
		Approvals:        []*typesv1.Approval{vote("alice", time.Second), vote("alice", 2*time.Second)}}
	require.Contains(t, s.missingForEnactment(p, d)[0], "approvals (")
	d.Approvals = append(d.Approvals, vote("bob", 3*time.Second))
	require.Equal(t, []string{`a passed dry run (POST /proposals/{id}/enact with {"dry_run":true})`}, s.missingForEnactment(p, d))
}

// awaitSettled waits until the lifecycle engine has moved proposal id out of its
// states (the negotiation recorded, the score with it).
func awaitSettled(t testing.TB, st store.Store, tenant, id string) *store.Proposal {
	t.Helper()
	var p *store.Proposal
	require.Eventually(t, func() bool {
		var err error
		p, err = st.Proposals().Get(context.Background(), tenant, id)
		return err == nil && (!inEngineState(p.Status) || p.Status == stPendingApproval)
	}, 20*time.Second, 2*time.Millisecond, "proposal %s stayed in the engine's states", id)
	return p
}

// settled is proposal id as GetProposal answers once the engine has moved it out of
// its states.
func settled(t testing.TB, s *Service, id string) *coordinatorv1.Proposal {
	t.Helper()
	awaitSettled(t, s.deps.Store, "t1", id)
	resp, err := s.GetProposal(proposerContext(), &coordinatorv1.GetProposalRequest{Id: id})
	require.NoError(t, err)
	return resp.GetProposal()
}

// A change whose manifest has no canonical form (so no manifest_sha256 for the
// audit) is not classified as before: it fails closed, high impact with the reason.
func TestReclassifyUncanonicalManifestFailsClosed(t *testing.T) {
	t.Parallel()
	f := newFabricUnderTest(t)
	s := f.services["default"]
	ctx := proposerContext()
	m := manifest(t, `{"action":"scale","target":"svc","regions":["eu-west"],"parameters":{"replicas_delta":1}}`)
	m.Parameters.Fields["note"] = structpb.NewStringValue("\xff") // invalid UTF-8: protojson refuses it
	pre, err := f.world.Read(ctx, "t1", "svc", []string{"eu-west"})
	require.NoError(t, err)
	p := &store.Proposal{ID: newID(time.Now()), TenantID: "t1", Status: stNegotiating, Impact: policy.ImpactLow}
	d := &coordinatorv1.Proposal{Policy: &coordinatorv1.PolicyDecision{ComputedImpact: policy.ImpactLow, Quorum: policy.QuorumMajority}}
	re := s.reclassify(ctx, p, d, m, pre, nil, stageAgreement)
	require.NotNil(t, re, "an unclassifiable change is never kept at its old classification")
	require.Nil(t, re.refused)
	require.Equal(t, policy.ImpactHigh, re.to)
	require.Contains(t, re.record.GetReasons()[1], "impact unknown: classifying the change at agreement failed: ")
}

// serviceContext is a call as the fabric's service identity for tenant.
func serviceContext(tenant string) context.Context {
	return auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "fabric", TenantID: tenant, Roles: []string{auth.RoleService}})
}
