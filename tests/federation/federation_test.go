package federation

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/fabric"
	qc "github.com/decision-fabric/fabric/internal/quorum"
)

const (
	agreed    = negotiatorv1.NegotiationState_NEGOTIATION_STATE_AGREED
	expired   = negotiatorv1.NegotiationState_NEGOTIATION_STATE_EXPIRED
	majority  = negotiatorv1.QuorumRule_QUORUM_RULE_MAJORITY
	unanimous = negotiatorv1.QuorumRule_QUORUM_RULE_UNANIMOUS
)

func scaleManifest(replicas float64) *typesv1.Manifest {
	return &typesv1.Manifest{Action: "scale", Target: "serviceX", Impact: "low",
		Parameters: &structpb.Struct{Fields: map[string]*structpb.Value{"replicas": structpb.NewNumberValue(replicas)}}}
}

// votesBy maps region -> verdict of the negotiation's final round.
func votesBy(n *negotiatorv1.Negotiation) map[string]*negotiatorv1.Vote {
	out := map[string]*negotiatorv1.Vote{}
	for _, v := range n.GetVotes() {
		if v.GetRound() == n.GetRound() {
			out[v.GetRegion()] = v
		}
	}
	return out
}

// requireCertificate checks the quorum certificate as the coordinator does, against
// the registry's keys.
func requireCertificate(t *testing.T, f *federation, n *negotiatorv1.Negotiation) {
	t.Helper()
	require.NotNil(t, n.GetQuorumCertificate())
	require.NoError(t, qc.Verify(qc.FromProto(n.GetQuorumCertificate()), f.trusted()))
}

// Two of five regions are SIGKILLed while they decide: the three others still make the
// majority.
func TestTwoOfFiveKilled(t *testing.T) {
	slow := regionOpts{voteDelay: 700 * time.Millisecond}
	f := newFederation(t, map[string]regionOpts{"eu-west": slow, "eu-central": slow, "us-east": slow, "us-west": slow, "ap-south": slow})
	n := f.start("p-two-killed", 3*time.Second, majority)
	f.regions[3].kill()
	f.regions[4].kill()
	n = f.wait(n.GetId())
	require.Equal(t, agreed, n.GetState(), n.GetReason())
	votes := votesBy(n)
	require.NotContains(t, votes, "us-west")
	require.NotContains(t, votes, "ap-south")
	require.GreaterOrEqual(t, len(votes), 3)
	requireCertificate(t, f, n)
}

// Three of five killed: no majority is possible; the negotiation ends EXPIRED at its
// deadline, naming the regions that did not answer.
func TestThreeOfFiveKilled(t *testing.T) {
	slow := regionOpts{voteDelay: 700 * time.Millisecond}
	f := newFederation(t, map[string]regionOpts{"eu-west": slow, "eu-central": slow, "us-east": slow, "us-west": slow, "ap-south": slow})
	began := time.Now()
	n := f.start("p-three-killed", 2500*time.Millisecond, majority)
	for _, r := range f.regions[2:] {
		r.kill()
	}
	n = f.wait(n.GetId())
	require.Equal(t, expired, n.GetState())
	require.GreaterOrEqual(t, time.Since(began), 2500*time.Millisecond, "it ends at the deadline, not before")
	require.Contains(t, n.GetReason(), "the deadline of 2.5s passed in round 1 with 2 of 5 votes in")
	require.Contains(t, n.GetReason(), "no answer from us-east, us-west, ap-south")
	require.Nil(t, n.GetQuorumCertificate())
}

// A region slower than the deadline abstains (a signed ABSTAIN just before the
// deadline): under unanimity the four others agree without it.
func TestSlowRegionAbstains(t *testing.T) {
	f := newFederation(t, map[string]regionOpts{"ap-south": {voteDelay: 30 * time.Second}})
	n := f.start("p-slow", 2500*time.Millisecond, unanimous)
	n = f.wait(n.GetId())
	require.Equal(t, agreed, n.GetState(), n.GetReason())
	votes := votesBy(n)
	require.Len(t, votes, 5)
	require.Equal(t, negotiatorv1.Verdict_VERDICT_ABSTAIN, votes["ap-south"].GetVerdict())
	require.Contains(t, votes["ap-south"].GetReason(), "could not decide before the deadline")
	requireCertificate(t, f, n)
}

// A region whose endpoint refuses connections is retried until the deadline; the
// four others decide.
func TestRegionRefusingConnections(t *testing.T) {
	f := newFederation(t, map[string]regionOpts{"us-east": {absent: true}})
	n := f.start("p-refusing", 2500*time.Millisecond, majority)
	n = f.wait(n.GetId())
	require.Equal(t, agreed, n.GetState(), n.GetReason())
	require.NotContains(t, votesBy(n), "us-east")
	requireCertificate(t, f, n)
	require.Contains(t, f.coord.logs.String(), "region vote failed; retrying", "the coordinator retried the refusing region")
}

// A region that signs with a key the registry does not hold: its votes are refused and
// counted, and under unanimity the negotiation cannot agree without it.
func TestForgedVoteRefused(t *testing.T) {
	f := newFederation(t, map[string]regionOpts{"eu-central": {forger: true}})
	n := f.start("p-forged", 2*time.Second, unanimous)
	n = f.wait(n.GetId())
	require.Equal(t, expired, n.GetState(), n.GetReason())
	require.NotContains(t, votesBy(n), "eu-central")
	require.Contains(t, n.GetReason(), "no answer from eu-central")
	require.GreaterOrEqual(t, f.coord.metric(`fabric_federation_votes_refused_total{reason="forged"}`), 1.0)
	require.Zero(t, f.coord.metric(`fabric_federation_votes_refused_total{reason="replayed"}`))
}

// The coordinating negotiator is SIGKILLed mid-round and restarted on the same data
// folder: it resumes the stored negotiation and asks the regions again.
func TestCoordinatorRestartResumes(t *testing.T) {
	slow := regionOpts{voteDelay: 1200 * time.Millisecond}
	f := newFederation(t, map[string]regionOpts{"eu-west": slow, "eu-central": slow, "us-east": slow, "us-west": slow, "ap-south": slow})
	n := f.start("p-restart", 5*time.Second, majority)
	time.Sleep(300 * time.Millisecond) // the regions are deciding
	f.coord.kill()
	f.coord.start()
	n = f.wait(n.GetId())
	require.Equal(t, agreed, n.GetState(), n.GetReason())
	require.Contains(t, f.coord.logs.String(), `"resumed":1,"expired":0`, "the restarted coordinator resumed the stored negotiation")
	requireCertificate(t, f, n)
}

// The coordinator reads the registry from GLOBAL_REGISTRY_URL when it is set.
func TestRegistryFromGlobalURL(t *testing.T) {
	f := newFederationWith(t, nil, setup{viaURL: true})
	n := f.wait(f.start("p-url", 2500*time.Millisecond, unanimous).GetId())
	require.Equal(t, agreed, n.GetState(), n.GetReason())
	require.Len(t, votesBy(n), 5)
	requireCertificate(t, f, n)
}

// Mutual TLS: every process presents its own certificate signed by the federation's
// CA; the regions' listeners accept only such clients, and the negotiation agrees.
func TestMutualTLSFederation(t *testing.T) {
	f := newFederationWith(t, nil, setup{mtls: true})
	n := f.wait(f.start("p-mtls", 2500*time.Millisecond, unanimous).GetId())
	require.Equal(t, agreed, n.GetState(), n.GetReason())
	require.Len(t, votesBy(n), 5)
	requireCertificate(t, f, n)
	require.Contains(t, f.regions[0].logs.String(), `"mtls":true`)
}

// The all-in-one fabric coordinates the five region processes: a proposal submitted to
// its decision coordinator is negotiated with them, and the coordinator checks the
// quorum certificate against the registry's keys and seals the consensus bundle.
func TestFabricCoordinatesRegionProcesses(t *testing.T) {
	f := newFederationWith(t, nil, setup{allInOne: true})
	conn, err := grpc.NewClient(f.coord.addrs[fabric.Coordinator], grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	jwt, err := f.signer.Mint("federation-test", "t1", []string{auth.RoleProposer}, time.Hour)
	require.NoError(t, err)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+jwt)
	c := coordinatorv1.NewCoordinatorServiceClient(conn)
	m := scaleManifest(3)
	m.Regions = regionNames
	resp, err := c.SubmitProposal(ctx, &coordinatorv1.SubmitProposalRequest{TenantId: "t1", Manifest: m})
	require.NoError(t, err)
	var p *coordinatorv1.Proposal
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := c.GetProposal(ctx, &coordinatorv1.GetProposalRequest{Id: resp.GetProposal().GetId(), WaitMs: 1000})
		require.NoError(t, err)
		p = got.GetProposal()
		if st := p.GetStatus(); st != coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SUBMITTED &&
			st != coordinatorv1.ProposalStatus_PROPOSAL_STATUS_NEGOTIATING && st != coordinatorv1.ProposalStatus_PROPOSAL_STATUS_AGREED {
			break
		}
		require.True(t, time.Now().Before(deadline), "proposal still %s", p.GetStatus())
	}
	require.Contains(t, []coordinatorv1.ProposalStatus{coordinatorv1.ProposalStatus_PROPOSAL_STATUS_SCORED,
		coordinatorv1.ProposalStatus_PROPOSAL_STATUS_PENDING_APPROVAL}, p.GetStatus(), p.GetReason())
	require.Empty(t, p.GetConsensusError())
	require.NotNil(t, p.GetConsensusBundle(), "the coordinator sealed a bundle: the certificate verified against the registry's keys")
	require.Equal(t, "AGREED", p.GetVotes().GetOutcome())
}

// A rehearsal (the sim-canary's dry run of a negotiation) asks the region processes
// for real votes, stores nothing, and agrees as the real negotiation would: its offers
// carry a ULID and a live deadline, which the regions require.
func TestRehearsalOverRegionProcesses(t *testing.T) {
	f := newFederation(t, map[string]regionOpts{"eu-west": {}, "eu-central": {}, "us-east": {}, "us-west": {}, "ap-south": {}})
	conn, err := grpc.NewClient(f.coord.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	svc, err := auth.LoadOrCreateDevServiceKey(filepath.Join(f.coord.dir, "data"))
	require.NoError(t, err)
	jwt, err := auth.NewServiceSigner(svc, "decision-fabric", "decision-fabric").Mint("sim-canary", "t1", []string{auth.RoleService}, time.Hour)
	require.NoError(t, err)
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+jwt)
	resp, err := negotiatorv1.NewNegotiatorServiceClient(conn).RehearseNegotiation(ctx, &negotiatorv1.RehearseNegotiationRequest{
		ProposalId: "p-rehearsal", Manifest: scaleManifest(12), QuorumRule: majority, TimeoutMs: 5000})
	require.NoError(t, err)
	require.Equal(t, agreed, resp.GetState(), resp.GetReason())
	require.GreaterOrEqual(t, len(resp.GetVotes()), 3, "a majority of the region processes voted (the round ends once the tally decides)")
}
