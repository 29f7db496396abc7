package coordinator

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	coordinatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/coordinator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/actions"
	"github.com/decision-fabric/fabric/internal/consent"
	"github.com/decision-fabric/fabric/internal/policy"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/store"
)

// Limits on request fields; each violation is INVALID_ARGUMENT naming the field.
const (
	maxMetadataBytes  = 64 << 10
	maxParamsBytes    = 256 << 10
	maxIdempotencyKey = 128
	maxRegions        = 32
)

var (
	reTenant = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)
	reAction = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	reULID   = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
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
	if err := ValidateManifest(r.GetManifest()); err != nil {
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

// ValidateManifest checks the typed fields of a manifest.
func ValidateManifest(m *typesv1.Manifest) error {
	if m.GetAction() == "" {
		return invalid("manifest.action is required")
	}
	if !reAction.MatchString(m.GetAction()) {
		return invalid("manifest.action %q: want 1-64 lower-case letters, digits, '_' or '-'", redact.Echo(m.GetAction()))
	}
	t := m.GetTarget()
	if t == "" {
		return invalid("manifest.target is required")
	}
	if len(t) > 256 || !utf8.ValidString(t) || strings.ContainsFunc(t, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return invalid("manifest.target: want 1-256 printable characters")
	}
	if len(m.GetRegions()) > maxRegions {
		return invalid("manifest.regions: at most %d", maxRegions)
	}
	seen := map[string]bool{}
	for i, r := range m.GetRegions() {
		if !regionkeys.ValidRegion(r) {
			return invalid("manifest.regions[%d] %q: want 1-64 of [a-z0-9-]", i, redact.Echo(r))
		}
		if seen[r] {
			return invalid("manifest.regions[%d] %q: duplicate", i, r)
		}
		seen[r] = true
	}
	switch m.GetImpact() {
	case "", policy.ImpactLow, policy.ImpactMedium, policy.ImpactHigh:
	default:
		return invalid("manifest.impact %q: want low, medium or high", redact.Echo(m.GetImpact()))
	}
	if p := m.GetParameters(); p != nil && proto.Size(p) > maxParamsBytes {
		return invalid("manifest.parameters: larger than %d bytes", maxParamsBytes)
	}
	// The parameters of a known action must match its schema (the one the executor
	// reads them with). An unknown action is for the tenant's policy to refuse or
	// classify high (unknown_actions), after this shape check.
	if actions.Known(m.GetAction()) {
		if err := actions.Validate(m.GetAction(), m.GetParameters().AsMap()); err != nil {
			return invalid("manifest.%v", err)
		}
	}
	if err := consent.Check(m.GetConsent()); err != nil {
		return invalid("manifest.%v", err)
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
	if !reULID.MatchString(id) {
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
	m := &typesv1.Manifest{}
	if err := protojson.Unmarshal(p.Manifest, m); err != nil {
		return nil, fmt.Errorf("coordinator: stored manifest of %s: %w", p.ID, err)
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
		// P2: how the manifest was signed and the consensus bundle of the agreement.
		ManifestSignature: d.GetManifestSignature(),
		ConsensusBundle:   cb,
		ConsensusError:    cbErr,
	}
	return out, nil
}
