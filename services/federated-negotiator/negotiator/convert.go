package negotiator

import (
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	typesv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/types/v1"
	"github.com/decision-fabric/fabric/internal/canonical"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	qc "github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/redact"
	"github.com/decision-fabric/fabric/internal/store"
)

// Request limits; each violation is INVALID_ARGUMENT naming the field.
const (
	maxDeadlineMS = 600000
	maxReasonLen  = 1024
)

var (
	reNegotiationID = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{26}$`)
)

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

// validateProposalAndRule checks the proposal reference and quorum rule that starting
// and rehearsing a negotiation both take.
func validateProposalAndRule(proposalID string, rule negotiatorv1.QuorumRule) error {
	if proposalID == "" {
		return invalid("proposal_id is required")
	}
	if !manifestpkg.ValidProposalRef(proposalID) {
		return invalid("proposal_id %q: want 1-128 letters, digits, '_', '.', ':' or '-'", redact.Echo(proposalID))
	}
	if _, ok := negotiatorv1.QuorumRule_name[int32(rule)]; !ok {
		return invalid("quorum_rule %d: unknown rule", rule)
	}
	return nil
}

func validateStart(req any) error {
	r := req.(*negotiatorv1.StartNegotiationRequest)
	if err := validateProposalAndRule(r.GetProposalId(), r.GetQuorumRule()); err != nil {
		return err
	}
	if d := r.GetDeadlineMs(); d != 0 && (d < 1 || d > maxDeadlineMS) {
		return invalid("deadline_ms %d: want 1-%d (or 0 for the default)", d, maxDeadlineMS)
	}
	if id := r.GetNegotiationId(); id != "" {
		if u, err := ulid.ParseStrict(id); err != nil || u.String() != id {
			return invalid("negotiation_id %q: want a canonical ULID (or empty)", redact.Echo(id))
		}
	}
	if r.GetManifest() == nil {
		return invalid("manifest is required: the negotiator negotiates the manifest the request carries")
	}
	if d := r.GetManifestSha256(); d != "" && !canonical.IsSHA256Hex(d) {
		return invalid("manifest_sha256 %q: want 64 lower-case hex characters", redact.Echo(d))
	}
	if d := r.GetDeadline(); d != nil {
		if err := d.CheckValid(); err != nil {
			return invalid("deadline: %v", err)
		}
	}
	return nil
}

func validateID(id string) error {
	if id == "" {
		return invalid("id is required")
	}
	if !reNegotiationID.MatchString(id) {
		return invalid("id %q: not a negotiation id (26-character ULID)", redact.Echo(id))
	}
	return nil
}

func stateFromString(s string) negotiatorv1.NegotiationState {
	return negotiatorv1.NegotiationState(negotiatorv1.NegotiationState_value["NEGOTIATION_STATE_"+s])
}

// unmarshalManifest reads a stored canonical manifest (manifest.Decode, which
// remembers the manifests it decoded: a negotiation's offer is read by its round
// loop and by every status read). The caller owns the result.
func unmarshalManifest(raw []byte) (*typesv1.Manifest, error) {
	m, err := manifestpkg.Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("negotiator: stored manifest: %w", err)
	}
	return m, nil
}

// fromStoreVote converts a stored vote.
func fromStoreVote(v *store.NegotiationVote) (Vote, error) {
	out := Vote{Region: v.Region, Round: v.Round, Verdict: parseVerdict(v.Verdict), Reason: v.Reason,
		Signature: v.Signature, KeyID: v.KeyID}
	if v.Counter != nil {
		m, err := unmarshalManifest(v.Counter)
		if err != nil {
			return Vote{}, err
		}
		out.Counter = m
	}
	return out, nil
}

// toProto renders a stored negotiation and its votes as of now.
func toProto(n *store.Negotiation, votes []*store.NegotiationVote, now time.Time) (*negotiatorv1.Negotiation, error) {
	offer, err := unmarshalManifest(n.Offer)
	if err != nil {
		return nil, err
	}
	out := &negotiatorv1.Negotiation{
		Id:             n.ID,
		ProposalId:     n.ProposalID,
		TenantId:       n.TenantID,
		State:          stateFromString(n.State),
		QuorumRule:     qc.RuleFromStored(n.QuorumRule),
		Round:          n.Round,
		VotesExpected:  int32(len(n.Regions)),
		Deadline:       timestamppb.New(n.Deadline),
		Reason:         n.Reason,
		Offer:          offer,
		ProposalDigest: n.ProposalDigest,
		MaxRounds:      n.MaxRounds,
		CreatedAt:      timestamppb.New(n.CreatedAt),
		UpdatedAt:      timestamppb.New(n.UpdatedAt),
		Votes:          make([]*negotiatorv1.Vote, 0, len(votes)),
	}
	if n.State == store.NegotiationRunning {
		out.TimeLeftMs = max(0, n.Deadline.Sub(now).Milliseconds())
	}
	if n.FinalManifest != nil {
		if out.FinalManifest, err = unmarshalManifest(n.FinalManifest); err != nil {
			return nil, err
		}
	}
	last := map[string]negotiatorv1.Verdict{}
	answered := map[string]bool{}
	for _, v := range votes { // ordered by round, so the last one seen is the latest
		pv := &negotiatorv1.Vote{Region: v.Region, Round: v.Round, Verdict: parseVerdict(v.Verdict), Reason: v.Reason,
			Signature: v.Signature, KeyId: v.KeyID, CastAt: timestamppb.New(v.CastAt)}
		if v.Counter != nil {
			if pv.Counter, err = unmarshalManifest(v.Counter); err != nil {
				return nil, err
			}
		}
		out.Votes = append(out.Votes, pv)
		last[v.Region] = pv.Verdict
		if v.Round == n.Round {
			answered[v.Region] = true
			out.VotesIn++
		}
	}
	for _, r := range n.Regions {
		out.Regions = append(out.Regions, &negotiatorv1.RegionProgress{Region: r.Region, LastVerdict: last[r.Region],
			Answered: answered[r.Region], Weight: r.Weight, KeyId: r.KeyID, PublicKey: r.PublicKey})
	}
	out.QuorumCertificate = qc.ToProto(certificate(n, votes))
	return out, nil
}

// truncate shortens s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
