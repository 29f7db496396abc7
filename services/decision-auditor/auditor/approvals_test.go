package auditor

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/auditlog"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/bundle"
)

// The export carries the proposal's signed approvals (GetProposal's approvals) as
// signed_approvals, unchanged, beside the approvers' names.
func TestApvExportCarriesSignedApprovals(t *testing.T) {
	t.Parallel()
	k, err := auditlog.GenerateKeys()
	require.NoError(t, err)
	signed := []*typesv1.Approval{
		{ProposalId: "p", TenantId: "t1", ManifestSha256: "ab", Approver: "alice", Decision: bundle.DecisionApprove,
			MfaMethod: "totp", MfaVerified: true, Signature: &typesv1.ManifestSignature{Signature: "c2ln", KeyId: "k"}},
		{ProposalId: "p", TenantId: "t1", ManifestSha256: "ab", Approver: "bob", Decision: bundle.DecisionDeny,
			MfaMethod: "none", Signature: &typesv1.ManifestSignature{Signature: "c2lnMg==", KeyId: "k"}},
	}
	p := &coordinatorv1.Proposal{Id: "p", TenantId: "t1", ManifestSha256: "ab", Approvers: []string{"alice"}, Approvals: signed}
	s, err := NewService(Deps{Store: openStore(t), Keys: k,
		Decisions: func(_ context.Context, tenant, id string) (*bundle.Decision, error) {
			require.Equal(t, "t1", tenant)
			require.Equal(t, "p", id)
			return bundle.FromProposal(p), nil
		}})
	require.NoError(t, err)
	defer s.Close()
	svc := auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "svc", TenantID: "t1", Roles: []string{auth.RoleService}})
	_, err = s.AppendEntry(svc, &auditorv1.AppendEntryRequest{ProposalId: "p", Event: "proposal.submitted", Payload: &structpb.Struct{}})
	require.NoError(t, err)

	ctx := auth.WithPrincipal(context.Background(), &auth.Principal{Subject: "aud", TenantID: "t1", Roles: []string{auth.RoleAuditor}})
	x, err := s.ExportDecision(ctx, &auditorv1.ExportDecisionRequest{ProposalId: "p"})
	require.NoError(t, err)
	require.Equal(t, []string{"alice"}, x.GetApprovals())
	require.Len(t, x.GetSignedApprovals(), 2)
	for i := range signed {
		require.True(t, proto.Equal(signed[i], x.GetSignedApprovals()[i]), "approval %d", i)
	}
}
