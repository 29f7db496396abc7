package coordinator

import (
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/store"
)

// Limits on request fields; each violation is INVALID_ARGUMENT naming the field.
const (
	maxMetadataBytes  = 64 << 10
	maxIdempotencyKey = 128
)

var (
	reTenant = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
)

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

// validateSubmit checks a SubmitProposalRequest's shape (not its policy).
func validateSubmit(req any) error {
	r := req.(*coordinatorv1.SubmitProposalRequest)
	if r.GetTenantId() == "" {
		return invalid("tenant_id is required")
	}
	if !reTenant.MatchString(r.GetTenantId()) {
		return invalid("tenant_id %q: want 1-128 letters, digits, '.', '_' or '-'", redact.Echo(r.GetTenantId()))
	}
	if r.GetManifest() == nil {
		return invalid("manifest is required")
	}
	if err := manifestpkg.Validate(r.GetManifest()); err != nil {
		return err
	}
	if t := r.GetManifest().GetTenantId(); t != "" && !reTenant.MatchString(t) {
		return invalid("manifest.tenant_id %q: want 1-128 letters, digits, '.', '_' or '-'", redact.Echo(t))
	}
	if m := r.GetMetadata(); m != nil && proto.Size(m) > maxMetadataBytes {
		return invalid("metadata: larger than %d bytes", maxMetadataBytes)
	}
	return nil
}

// validateGet checks a GetProposalRequest.
func validateGet(req any) error {
	r := req.(*coordinatorv1.GetProposalRequest)
	if r.GetWaitMs() > maxWaitMs {
		return status.Errorf(codes.InvalidArgument, "wait_ms: at most %d", maxWaitMs)
	}
	return validateID(r.GetId())
}

// maxWaitMs bounds GetProposal's long poll.
const maxWaitMs = 30000

// validateEnact checks an EnactProposalRequest.
func validateEnact(req any) error {
	return validateID(req.(*coordinatorv1.EnactProposalRequest).GetId())
}

// validateRollback checks a RollbackProposalRequest.
func validateRollback(req any) error {
	return validateID(req.(*coordinatorv1.RollbackProposalRequest).GetId())
}

func validateDescribeChange(req any) error {
	return validateID(req.(*coordinatorv1.DescribeChangeRequest).GetId())
}

// validateList checks a ListProposalsRequest.
func validateList(req any) error {
	r := req.(*coordinatorv1.ListProposalsRequest)
	if r.GetLimit() < 0 || r.GetLimit() > 500 {
		return invalid("limit %d: want 0-500", r.GetLimit())
	}
	return nil
}

func validateID(id string) error {
	if id == "" {
		return invalid("id is required")
	}
	if !manifestpkg.ValidProposalID(id) {
		return invalid("id %q: not a proposal id (26-character ULID)", redact.Echo(id))
	}
	return nil
}

// validateIdempotencyKey checks the optional Idempotency-Key header.
func validateIdempotencyKey(k string) error {
	if len(k) > maxIdempotencyKey {
		return invalid("Idempotency-Key: at most %d characters", maxIdempotencyKey)
	}
	for _, r := range k {
		if r < 0x21 || r > 0x7e {
			return invalid("Idempotency-Key: printable ASCII only")
		}
	}
	return nil
}

var statusNames = func() map[coordinatorv1.ProposalStatus]string {
	m := map[coordinatorv1.ProposalStatus]string{}
	for v, name := range coordinatorv1.ProposalStatus_name {
		m[coordinatorv1.ProposalStatus(v)] = strings.TrimPrefix(name, "PROPOSAL_STATUS_")
	}
	return m
}()

// statusString is the stored form of a status ("SUBMITTED").
func statusString(s coordinatorv1.ProposalStatus) string { return statusNames[s] }

// statusFromString parses the stored form.
func statusFromString(s string) coordinatorv1.ProposalStatus {
	return coordinatorv1.ProposalStatus(coordinatorv1.ProposalStatus_value["PROPOSAL_STATUS_"+s])
}

// toProto converts a stored proposal.
func toProto(p *store.Proposal) (*coordinatorv1.Proposal, error) {
	m, err := submittedManifest(p)
	if err != nil {
		return nil, err
	}
	md := &structpb.Struct{}
	if len(p.Metadata) > 0 {
		if err := protojson.Unmarshal(p.Metadata, md); err != nil {
			return nil, fmt.Errorf("coordinator: stored metadata of %s: %w", p.ID, err)
		}
	}
	d, err := decision(p)
	if err != nil {
		return nil, err
	}
	cbErr := d.GetConsensusError()
	cb, err := apiBundle(p, d)
	if err != nil {
		// A stored bundle that cannot be read (changed in the store) is shown as its
		// absence, with why; enactment refuses it (verifyConsensus).
		cb, cbErr = nil, "the stored consensus bundle cannot be read: "+err.Error()
	}
	out := &coordinatorv1.Proposal{
		Id:              p.ID,
		TenantId:        p.TenantID,
		Status:          statusFromString(p.Status),
		Manifest:        m,
		ManifestSha256:  p.ManifestSHA256,
		Metadata:        md,
		Impact:          p.Impact,
		DryRun:          p.DryRun,
		PreStateSha256:  p.PreStateSHA256,
		CreatedBy:       p.CreatedBy,
		TraceId:         p.TraceID,
		Version:         p.Version,
		CreatedAt:       timestamppb.New(p.CreatedAt),
		UpdatedAt:       timestamppb.New(p.UpdatedAt),
		PostStateSha256: p.PostStateSHA256,
		// The decision record's fields.
		Votes:          d.GetVotes(),
		AgreedManifest: d.GetAgreedManifest(),
		Policy:         d.GetPolicy(),
		Score:          d.GetScore(),
		DryRunResult:   d.GetDryRunResult(),
		Reason:         d.GetReason(),
		Approvers:      d.GetApprovers(),
		// P3: the human votes, the approval deadline and where the approval stands.
		Approvals:        d.GetApprovals(),
		ApprovalDeadline: d.GetApprovalDeadline(),
		ApprovalStanding: d.GetApprovalStanding(),
		// P2: how the manifest was signed and the consensus bundle of the agreement.
		ManifestSignature: d.GetManifestSignature(),
		ConsensusBundle:   cb,
		ConsensusError:    cbErr,
	}
	return out, nil
}
