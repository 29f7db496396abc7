package canary

// replay.go holds the Replay RPC: past decisions of the caller's tenant re-decided under
// a candidate policy and region set (internal/replay). It reads through the coordinator's,
// the auditor's and the negotiator's APIs as the fabric's service identity for the
// caller's tenant, verifies what it reads, and writes nothing anywhere.

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/auditor/v1"
	canaryv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/canary/v1"
	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	"github.com/decision-fabric/fabric/internal/bundle"
	"github.com/decision-fabric/fabric/internal/fabric"
	"github.com/decision-fabric/fabric/internal/replay"
	"github.com/decision-fabric/fabric/internal/server"
)

// ReplayDeps are what Replay reads and verifies with.
type ReplayDeps struct {
	// Coordinator gives the decision records (ListDecisionRecords).
	Coordinator coordinatorv1.CoordinatorServiceClient
	// Auditor gives the audit trails (GetAuditTrail): with the coordinator's record
	// they make the decision's export (bundle.FromTrail), verified as the auditor's
	// would be. The service identity may not call ExportDecision.
	Auditor auditorv1.AuditorServiceClient
	// Negotiator gives the quorum certificate of a decision the regions did not agree
	// to (GetNegotiationStatus).
	Negotiator negotiatorv1.NegotiatorServiceClient
	// AsService returns ctx carrying the fabric's service identity for tenant.
	AsService func(ctx context.Context, tenant string) context.Context
	// Keys returns the public keys records are verified with (the trusted cosign keys,
	// the region key registry, the audit checkpoint keys); called per replay, so keys
	// created after start (the audit log's, in simulation) are found.
	Keys func() (bundle.Keys, error)
}

// WithReplay enables Replay with d.
func (s *Service) WithReplay(d ReplayDeps) *Service {
	s.replay = &d
	return s
}

// Replay implements the RPC (see proto/decisionfabric/canary/v1/canary.proto).
func (s *Service) Replay(ctx context.Context, req *canaryv1.ReplayRequest) (*canaryv1.ReplayResponse, error) {
	if s.replay == nil {
		return nil, server.Unimplemented(fabric.Canary, "Replay", "replays (this sim-canary has no peers configured)", 0)
	}
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	sel, cand, err := replay.Parse(req)
	if err != nil {
		return nil, err
	}
	d := s.replay
	sctx := d.AsService(ctx, tenant)
	list := &coordinatorv1.ListDecisionRecordsRequest{Ids: sel.IDs}
	if len(sel.IDs) == 0 {
		list = &coordinatorv1.ListDecisionRecordsRequest{From: timestamppb.New(sel.From), To: timestamppb.New(sel.To), Limit: replay.MaxProposals}
	}
	recs, err := d.Coordinator.ListDecisionRecords(sctx, list)
	if err != nil {
		return nil, err
	}
	keys, keysErr := d.Keys()
	out := &canaryv1.ReplayResponse{NotFound: recs.GetNotFound(), Truncated: recs.GetTruncated(), CandidatePolicyDigest: cand.PolicyDigest()}
	for _, dr := range recs.GetRecords() {
		p := dr.GetProposal()
		if p.GetTenantId() != tenant { // never another tenant's, whatever a peer answers
			out.NotFound = append(out.NotFound, p.GetId())
			continue
		}
		var ev replay.Evidence
		if keysErr != nil {
			ev.ExportErr = errors.New("no keys to verify with: " + keysErr.Error())
		} else {
			ev.Export, ev.ExportErr = export(sctx, d.Auditor, p)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if p.GetConsensusBundle() == nil && p.GetVotes().GetNegotiationId() != "" {
			st, err := d.Negotiator.GetNegotiationStatus(sctx, &negotiatorv1.GetNegotiationStatusRequest{Id: p.GetVotes().GetNegotiationId()})
			ev.Negotiation = st.GetNegotiation()
			if status.Code(err) != codes.NotFound { // never started: no votes to recount
				ev.NegotiationErr = err
			}
		}
		r := replay.Redecide(replay.Verify(dr, ev, keys), cand)
		if r.GetChanged() {
			out.Changed++
		}
		out.Results = append(out.Results, r)
	}
	out.Table = replay.Table(out.GetResults(), out.GetNotFound())
	return out, nil
}

// export is the decision export of p, assembled from p (the coordinator's record, as
// the auditor's ExportDecision reads it too) and its audit trail, as the service
// identity may read them: the document ExportDecision would give, verified the same
// way by replay.Verify.
func export(ctx context.Context, c auditorv1.AuditorServiceClient, p *coordinatorv1.Proposal) (*auditorv1.ExportDecisionResponse, error) {
	tr, err := c.GetAuditTrail(ctx, &auditorv1.GetAuditTrailRequest{ProposalId: p.GetId()})
	if err != nil {
		return nil, err
	}
	return bundle.FromTrail(bundle.FromProposal(p), tr, time.Now().UTC()), nil
}
