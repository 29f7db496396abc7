package negotiator

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"time"

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
	"github.com/decision-fabric/fabric/internal/regionkeys"
)

// The region side of a federation (region.proto): a region that runs as its own
// process answers RequestVote with a vote decided by its own limits (RegionLimits) and
// signed with its own key, twice: over the certificate payload (quorum.VotePayload) and
// over the envelope (quorum.EnvelopePayload) that binds it to the request's nonce,
// negotiation, offer, reason and time. Authentication (the federation token, mTLS) is
// the listener's (internal/federation), not this handler's.

// reNonce is a request nonce: 16-64 URL-safe base64 characters.
var reNonce = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)

// RegionServer implements negotiatorv1.RegionServiceServer for one region.
type RegionServer struct {
	negotiatorv1.UnimplementedRegionServiceServer
	limits RegionLimits
	agent  *SimulatedAgent // its Decide applies the region's state after the limits
	key    ed25519.PrivateKey
	keyID  string
	delay  time.Duration
	now    func() time.Time
	log    *slog.Logger
}

// RegionServerConfig configures NewRegionServer.
type RegionServerConfig struct {
	Limits RegionLimits
	// Key is the region's signing key; its public key must be the registry's.
	Key ed25519.PrivateKey
	// VoteDelay is TEST-ONLY: each decision takes this long (a region slower than the
	// deadline abstains).
	VoteDelay time.Duration
	Now       func() time.Time
	Logger    *slog.Logger
}

// NewRegionServer returns the region's RegionService.
func NewRegionServer(c RegionServerConfig) (*RegionServer, error) {
	if !regionkeys.ValidRegion(c.Limits.Region.Name) {
		return nil, fmt.Errorf("negotiator: region name %q: want 1-64 of [a-z0-9-]", c.Limits.Region.Name)
	}
	for i, a := range c.Limits.AllowedActions {
		if !manifestpkg.ValidAction(a) || slices.Index(c.Limits.AllowedActions, a) != i {
			return nil, fmt.Errorf("negotiator: region %s: allowed_actions[%d] %q: want distinct action names (1-64 of [a-z0-9_-])", c.Limits.Region.Name, i, a)
		}
	}
	if c.Limits.MaxReplicas < 0 || c.Limits.Region.Capacity < 0 {
		return nil, fmt.Errorf("negotiator: region %s: max_replicas and capacity: want >= 0", c.Limits.Region.Name)
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("negotiator: region %s: an Ed25519 private key is required", c.Limits.Region.Name)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	pub := c.Key.Public().(ed25519.PublicKey)
	return &RegionServer{limits: c.Limits, agent: NewSimulatedAgent(c.Limits.Region, c.Key, c.Now), key: c.Key,
		keyID: regionkeys.KeyID(pub), delay: c.VoteDelay, now: c.Now,
		log: c.Logger.With("region", c.Limits.Region.Name)}, nil
}

// abstainMargin is how long before the deadline a region that has not decided answers
// ABSTAIN, so that its answer still reaches the coordinator in time.
func abstainMargin(left time.Duration) time.Duration {
	return min(max(left/5, 20*time.Millisecond), 500*time.Millisecond)
}

// RequestVote implements the RPC.
func (r *RegionServer) RequestVote(ctx context.Context, req *negotiatorv1.RequestVoteRequest) (*negotiatorv1.RequestVoteResponse, error) {
	if err := validateVoteRequest(req); err != nil {
		return nil, err
	}
	name := r.limits.Region.Name
	if req.GetRegion() != name {
		return nil, status.Errorf(codes.FailedPrecondition, "this is region %s, not %s", name, redact.Echo(req.GetRegion()))
	}
	now := r.now()
	deadline := req.GetDeadline().AsTime()
	if !now.Before(deadline) {
		return nil, status.Errorf(codes.FailedPrecondition, "the deadline %s has passed", deadline.UTC().Format(time.RFC3339Nano))
	}
	_, offerDigest, err := manifestpkg.Canonical(req.GetOffer())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "offer: %v", err)
	}
	if req.GetRound() == 1 && offerDigest != req.GetProposalDigest() {
		return nil, status.Errorf(codes.InvalidArgument,
			"proposal_digest %s is not the round-1 offer's digest %s", req.GetProposalDigest(), offerDigest)
	}

	verdict, reason, counter := negotiatorv1.Verdict_VERDICT_ABSTAIN, "", (*typesv1.Manifest)(nil)
	decided := true
	if r.delay > 0 { // test-only: a slow region
		decideBy := deadline.Add(-abstainMargin(deadline.Sub(now)))
		wait := min(r.delay, decideBy.Sub(now))
		if !sleep(ctx, max(wait, 0)) {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		decided = wait >= r.delay
	}
	if decided {
		verdict, reason, counter = r.limits.Decide(r.agent, req.GetOffer(), r.now())
	} else {
		reason = fmt.Sprintf("region %s could not decide before the deadline %s: it abstains", name, deadline.UTC().Format(time.RFC3339Nano))
	}
	vote, err := r.sign(req, offerDigest, verdict, reason, counter)
	if err != nil {
		return nil, err
	}
	r.log.DebugContext(ctx, "vote cast", "negotiation_id", req.GetNegotiationId(), "round", req.GetRound(), "verdict", verdictName(verdict))
	return &negotiatorv1.RequestVoteResponse{Vote: vote}, nil
}

// sign builds the signed vote.
func (r *RegionServer) sign(req *negotiatorv1.RequestVoteRequest, offerDigest string, verdict negotiatorv1.Verdict,
	reason string, counter *typesv1.Manifest) (*negotiatorv1.RegionVote, error) {
	name := r.limits.Region.Name
	reason = truncate(cleanText(reason), maxReasonLen)
	castAt := r.now().UTC()
	env := qc.Envelope{Region: name, NegotiationID: req.GetNegotiationId(), ProposalDigest: req.GetProposalDigest(),
		OfferDigest: offerDigest, Round: req.GetRound(), Verdict: verdictName(verdict), Reason: reason,
		CastAt: qc.FormatCastAt(castAt), Nonce: req.GetNonce(), KeyID: r.keyID}
	if counter != nil {
		_, d, err := manifestpkg.Canonical(counter)
		if err != nil {
			return nil, fmt.Errorf("negotiator: counter-offer: %w", err)
		}
		env.CounterDigest = d
	}
	sig, err := SignVote(r.key, req.GetProposalDigest(), req.GetRound(), name, verdict)
	if err != nil {
		return nil, err
	}
	payload, err := qc.EnvelopePayload(env)
	if err != nil {
		return nil, err
	}
	return &negotiatorv1.RegionVote{Region: name, NegotiationId: env.NegotiationID, ProposalDigest: env.ProposalDigest,
		OfferDigest: offerDigest, Round: env.Round, Verdict: verdict, Reason: reason, Counter: counter,
		CastAt: timestamppb.New(castAt), Nonce: env.Nonce, KeyId: r.keyID, Signature: sig,
		EnvelopeSignature: base64.StdEncoding.EncodeToString(ed25519.Sign(r.key, payload))}, nil
}

// validateVoteRequest checks a vote request's shape (INVALID_ARGUMENT naming the field).
func validateVoteRequest(req *negotiatorv1.RequestVoteRequest) error {
	if !regionkeys.ValidRegion(req.GetRegion()) {
		return invalid("region %q: want 1-64 of [a-z0-9-]", redact.Echo(req.GetRegion()))
	}
	if u, err := ulid.ParseStrict(req.GetNegotiationId()); err != nil || u.String() != req.GetNegotiationId() {
		return invalid("negotiation_id %q: want a canonical ULID", redact.Echo(req.GetNegotiationId()))
	}
	if !reTenantName.MatchString(req.GetTenantId()) {
		return invalid("tenant_id %q: malformed", redact.Echo(req.GetTenantId()))
	}
	if !manifestpkg.ValidProposalRef(req.GetProposalId()) {
		return invalid("proposal_id %q: want 1-128 letters, digits, '_', '.', ':' or '-'", redact.Echo(req.GetProposalId()))
	}
	if !canonical.IsSHA256Hex(req.GetProposalDigest()) {
		return invalid("proposal_digest %q: want 64 lower-case hex characters", redact.Echo(req.GetProposalDigest()))
	}
	if req.GetRound() < 1 || req.GetRound() > maxMaxRounds {
		return invalid("round %d: want 1..%d", req.GetRound(), maxMaxRounds)
	}
	if !reNonce.MatchString(req.GetNonce()) {
		return invalid("nonce: want 16-64 characters of [A-Za-z0-9_-]")
	}
	if req.GetDeadline() == nil {
		return invalid("deadline is required")
	}
	if err := req.GetDeadline().CheckValid(); err != nil {
		return invalid("deadline: %v", err)
	}
	if req.GetOffer() == nil {
		return invalid("offer is required")
	}
	return nil
}
