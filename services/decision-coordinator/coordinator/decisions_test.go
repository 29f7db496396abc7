package coordinator

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	"github.com/decision-fabric/fabric/internal/replay"
	"github.com/decision-fabric/fabric/internal/world"
)

func TestValidateListDecisionRecords(t *testing.T) {
	id := "01JTESTAAAAAAAAAAAAAAAAAAA"
	from, to := timestamppb.New(time.Unix(100, 0)), timestamppb.New(time.Unix(200, 0))
	many := make([]string, maxDecisionRecordIDs+1)
	for i := range many {
		many[i] = id
	}
	for _, bad := range []*coordinatorv1.ListDecisionRecordsRequest{
		{}, {Ids: []string{id}, From: from, To: to}, {Ids: many}, {Ids: []string{"nope"}},
		{From: from}, {From: to, To: from}, {From: from, To: to, Limit: -1}, {From: from, To: to, Limit: 201},
	} {
		require.Equal(t, codes.InvalidArgument, status.Code(validateListDecisionRecords(bad)), "%v", bad)
	}
	require.NoError(t, validateListDecisionRecords(&coordinatorv1.ListDecisionRecordsRequest{Ids: []string{id}}))
	require.NoError(t, validateListDecisionRecords(&coordinatorv1.ListDecisionRecordsRequest{From: from, To: to, Limit: 5}))
}

// TestReplayUnderTheDecidingPolicyChangesNothing plays random decisions (manifests,
// counter-offers, approvals) under each policy, reads them back with
// ListDecisionRecords, and replays each under the very policy it was decided with:
// the replay classifies as the coordinator did (the same impact) and changes no
// outcome. Another tenant's id is not found, and a window lists only the tenant's.
func TestReplayUnderTheDecidingPolicyChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFabricUnderTest(t)
	r := rand.New(rand.NewPCG(12, 2))
	start := time.Now().Add(-time.Second)
	byPolicy := map[string][]string{}
	for range 150 {
		c := randomCase(r)
		c.Enact = c.Submit
		f.run(t, c)
	}
	svc := serviceContext("t1")
	all, err := f.services["default"].ListDecisionRecords(svc, &coordinatorv1.ListDecisionRecordsRequest{
		From: timestamppb.New(start), To: timestamppb.New(time.Now().Add(time.Second))})
	require.NoError(t, err)
	require.False(t, all.GetTruncated())
	require.NotEmpty(t, all.GetRecords())
	decided := 0
	for _, dr := range all.GetRecords() {
		p := dr.GetProposal()
		require.Equal(t, "t1", p.GetTenantId())
		require.Equal(t, canonical.SHA256Hex(dr.GetPreState()), p.GetPreStateSha256(), "the stored pre-state is the recorded one")
		name := ""
		for n, e := range f.engines {
			if e.Digest() == p.GetPolicy().GetPolicyDigest() {
				name = n
			}
		}
		require.NotEmpty(t, name, "decided by a known policy")
		byPolicy[name] = append(byPolicy[name], p.GetId())
		rec := replay.Record{Proposal: p, PreState: world.Snapshot{JSON: dr.GetPreState(), SHA256: dr.GetPreStateSha256()}}
		if p.GetVotes().GetOutcome() == "AGREED" && p.GetAgreedManifest() == nil {
			// Refused at agreement: the agreed change is the negotiator's final
			// manifest (what the sim-canary reads from the negotiator).
			rec.AgreedManifest = f.neg.final(p.GetManifest())
		}
		res := replay.Redecide(rec, replay.Candidate{Policy: f.engines[name]})
		if moved(p.GetManifest(), cmp.Or(p.GetAgreedManifest(), rec.AgreedManifest)) {
			// The regions agreed on other regions: the coordinator classified that
			// against the world at agreement, which is not recorded; the replay
			// fails closed (high impact) and says so.
			require.Equal(t, "high", res.GetCandidateImpact(), res.GetReasons())
			require.Contains(t, strings.Join(res.GetReasons(), "\n"), "which the recorded pre-state does not hold")
			continue
		}
		require.False(t, res.GetChanged(), "%s %s (%s; agreed %v) under %s: %v", p.GetId(), p.GetStatus(), p.GetReason(), p.GetAgreedManifest(), name, res.GetReasons())
		if res.GetCandidateOutcome() != replay.OutcomeRefused {
			require.Equal(t, p.GetImpact(), res.GetCandidateImpact(), "%s under %s: %v", p.GetId(), name, res.GetReasons())
			decided++
		}
	}
	require.Greater(t, decided, 30)
	for name, ids := range byPolicy {
		t.Logf("%s: %d decisions", name, len(ids))
	}

	// By ids: in request order; another tenant's is not found.
	first := all.GetRecords()[0].GetProposal().GetId()
	last := all.GetRecords()[len(all.GetRecords())-1].GetProposal().GetId()
	got, err := f.services["default"].ListDecisionRecords(svc, &coordinatorv1.ListDecisionRecordsRequest{Ids: []string{last, first}})
	require.NoError(t, err)
	require.Len(t, got.GetRecords(), 2)
	require.Equal(t, last, got.GetRecords()[0].GetProposal().GetId())
	other, err := f.services["default"].ListDecisionRecords(serviceContext("t2"), &coordinatorv1.ListDecisionRecordsRequest{Ids: []string{first}})
	require.NoError(t, err)
	require.Empty(t, other.GetRecords())
	require.Equal(t, []string{first}, other.GetNotFound())

	// A window with a limit: the oldest, and truncated.
	two, err := f.services["default"].ListDecisionRecords(svc, &coordinatorv1.ListDecisionRecordsRequest{
		From: timestamppb.New(start), To: timestamppb.New(time.Now().Add(time.Second)), Limit: 2})
	require.NoError(t, err)
	require.True(t, two.GetTruncated())
	require.Len(t, two.GetRecords(), 2)
	require.Equal(t, first, two.GetRecords()[0].GetProposal().GetId())
}

// final is the manifest the fake regions agreed to for a proposal of m's target.
func (n *fakeNegotiator) final(m *typesv1.Manifest) *typesv1.Manifest {
	n.mu.Lock()
	defer n.mu.Unlock()
	if c := n.counters[m.GetTarget()]; c != nil {
		return c
	}
	return m
}

// moved reports whether the agreed manifest touches a region the submitted one did not.
func moved(submitted, agreed *typesv1.Manifest) bool {
	for _, r := range agreed.GetRegions() {
		if !slices.Contains(submitted.GetRegions(), r) {
			return true
		}
	}
	return false
}
