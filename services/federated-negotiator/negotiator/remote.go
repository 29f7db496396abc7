package negotiator

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/federation"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	qc "github.com/decision-fabric/fabric/internal/quorum"
	"github.com/decision-fabric/fabric/internal/regionkeys"
	"github.com/decision-fabric/fabric/internal/signing"
)

// The coordinator side of a federation: a RemoteAgent is the Agent of a region that
// runs as its own process. Each Vote sends the round's offer with a fresh nonce and the
// deadline over gRPC, then admits the answer only if both its signatures verify with
// the key the REGISTRY holds for the region (never a key the answer carries) and it
// answers exactly this request. A refused answer is an error (ask retries the region
// until the deadline) and is counted in fabric_federation_votes_refused_total{reason}:
//
//	forged     a signature does not verify with the registry's key, or another key id
//	replayed   a genuinely signed vote for another request: another nonce, negotiation,
//	           round, proposal or offer
//	duplicate  a vote for a request already answered (its nonce was consumed)
//	late       signed after the negotiation's deadline
//	malformed  anything else: no vote, another region, a bad verdict or counter, a time
//	           far in the future

// Refusal reasons (the reason label).
const (
	RefusedForged    = "forged"
	RefusedReplayed  = "replayed"
	RefusedDuplicate = "duplicate"
	RefusedLate      = "late"
	RefusedMalformed = "malformed"
)

var refusedReasons = []string{RefusedForged, RefusedReplayed, RefusedDuplicate, RefusedLate, RefusedMalformed}

// RefusedVoteError is a region's answer the coordinator refused.
type RefusedVoteError struct {
	Reason string // RefusedForged ...
	Detail string
}

func (e *RefusedVoteError) Error() string { return "vote refused (" + e.Reason + "): " + e.Detail }

// maxClockSkew bounds how far in the future a region's cast_at may be.
const maxClockSkew = time.Minute

// RemoteAgent asks one region's negotiator for its vote.
type RemoteAgent struct {
	region federation.Region
	keyPEM []byte
	keyID  string
	client negotiatorv1.RegionServiceClient
	now    func() time.Time
	refuse func(reason string) // counts a refusal

	mu sync.Mutex
	// consumed are the nonces of answered requests, kept until their deadline has
	// passed (a later answer with one of them is a duplicate).
	consumed map[string]time.Time
}

// NewRemoteAgent returns the agent of region, reached through conn.
func NewRemoteAgent(region federation.Region, conn grpc.ClientConnInterface, now func() time.Time, refuse func(reason string)) *RemoteAgent {
	if now == nil {
		now = time.Now
	}
	if refuse == nil {
		refuse = func(string) {}
	}
	return &RemoteAgent{region: region, keyPEM: []byte(regionkeys.PublicKeyPEM(region.PublicKey)),
		keyID: regionkeys.KeyID(region.PublicKey), client: negotiatorv1.NewRegionServiceClient(conn),
		now: now, refuse: refuse, consumed: map[string]time.Time{}}
}

// Region implements Agent.
func (a *RemoteAgent) Region() string { return a.region.Name }

// PublicKey implements Agent: the registry's key for the region.
func (a *RemoteAgent) PublicKey() ed25519.PublicKey { return a.region.PublicKey }

// newNonce returns 24 random bytes, URL-safe base64 (32 characters).
func newNonce() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Vote implements Agent.
func (a *RemoteAgent) Vote(ctx context.Context, o Offer) (Vote, error) {
	_, offerDigest, err := manifestpkg.Canonical(o.Manifest)
	if err != nil {
		return Vote{}, err
	}
	req := &negotiatorv1.RequestVoteRequest{Region: a.region.Name, NegotiationId: o.NegotiationID, TenantId: o.TenantID,
		ProposalId: o.ProposalID, ProposalDigest: o.ProposalDigest, Round: o.Round, Offer: o.Manifest,
		Nonce: newNonce(), Deadline: timestamppb.New(o.Deadline)}
	resp, err := a.client.RequestVote(ctx, req)
	if err != nil {
		return Vote{}, fmt.Errorf("region %s: %w", a.region.Name, err)
	}
	v, err := a.admit(resp.GetVote(), req, offerDigest, o.Deadline)
	if err != nil {
		var refused *RefusedVoteError
		if errors.As(err, &refused) {
			a.refuse(refused.Reason)
		}
		return Vote{}, fmt.Errorf("region %s: %w", a.region.Name, err)
	}
	return v, nil
}

// admit checks an answer to req (see RemoteAgent) and consumes its nonce.
func (a *RemoteAgent) admit(rv *negotiatorv1.RegionVote, req *negotiatorv1.RequestVoteRequest, offerDigest string, deadline time.Time) (Vote, error) {
	refused := func(reason, format string, args ...any) (Vote, error) {
		return Vote{}, &RefusedVoteError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
	}
	if rv == nil {
		return refused(RefusedMalformed, "the answer carries no vote")
	}
	if rv.GetRegion() != a.region.Name {
		return refused(RefusedMalformed, "a vote of region %q, not %s", truncate(rv.GetRegion(), 64), a.region.Name)
	}
	verdict := rv.GetVerdict()
	switch verdict {
	case negotiatorv1.Verdict_VERDICT_ACCEPT, negotiatorv1.Verdict_VERDICT_REJECT, negotiatorv1.Verdict_VERDICT_ABSTAIN,
		negotiatorv1.Verdict_VERDICT_COUNTER:
	default:
		return refused(RefusedMalformed, "verdict %v", verdict)
	}
	if (verdict == negotiatorv1.Verdict_VERDICT_COUNTER) != (rv.GetCounter() != nil) {
		return refused(RefusedMalformed, "a %s vote with%s a counter-offer", verdictName(verdict), map[bool]string{true: "", false: "out"}[rv.GetCounter() != nil])
	}
	castAt := rv.GetCastAt()
	if castAt == nil || castAt.CheckValid() != nil {
		return refused(RefusedMalformed, "cast_at is missing or invalid")
	}
	// Signatures first, with the registry's key only: what follows trusts the fields.
	if rv.GetKeyId() != a.keyID {
		return refused(RefusedForged, "signed with key %q, the registry's key for %s is %s", truncate(rv.GetKeyId(), 80), a.region.Name, a.keyID)
	}
	env := qc.Envelope{Region: rv.GetRegion(), NegotiationID: rv.GetNegotiationId(), ProposalDigest: rv.GetProposalDigest(),
		OfferDigest: rv.GetOfferDigest(), Round: rv.GetRound(), Verdict: verdictName(verdict), Reason: rv.GetReason(),
		CastAt: qc.FormatCastAt(castAt.AsTime()), Nonce: rv.GetNonce(), KeyID: rv.GetKeyId()}
	if rv.GetCounter() != nil {
		_, d, err := manifestpkg.Canonical(rv.GetCounter())
		if err != nil {
			return refused(RefusedMalformed, "counter-offer: %v", err)
		}
		env.CounterDigest = d
	}
	payload, err := qc.EnvelopePayload(env)
	if err != nil {
		return refused(RefusedMalformed, "envelope: %v", err)
	}
	if err := signing.Verify(a.keyPEM, payload, rv.GetEnvelopeSignature()); err != nil {
		return refused(RefusedForged, "envelope signature does not verify with the registry's key for %s", a.region.Name)
	}
	if err := VerifyVote(a.region.PublicKey, rv.GetProposalDigest(), rv.GetRound(), rv.GetRegion(), verdict, rv.GetSignature()); err != nil {
		return refused(RefusedForged, "vote signature does not verify with the registry's key for %s", a.region.Name)
	}
	// A genuine vote: is it this request's answer?
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for n, until := range a.consumed {
		if now.After(until) {
			delete(a.consumed, n)
		}
	}
	if _, used := a.consumed[rv.GetNonce()]; used {
		return refused(RefusedDuplicate, "the request with this nonce was already answered")
	}
	if rv.GetNonce() != req.GetNonce() || rv.GetNegotiationId() != req.GetNegotiationId() || rv.GetRound() != req.GetRound() ||
		rv.GetProposalDigest() != req.GetProposalDigest() || rv.GetOfferDigest() != offerDigest {
		return refused(RefusedReplayed, "the vote answers another request (negotiation %s round %d)", truncate(rv.GetNegotiationId(), 40), rv.GetRound())
	}
	cast := castAt.AsTime()
	if cast.After(deadline) || now.After(deadline) {
		return refused(RefusedLate, "cast at %s, after the deadline %s", qc.FormatCastAt(cast), qc.FormatCastAt(deadline))
	}
	if cast.After(now.Add(maxClockSkew)) {
		return refused(RefusedMalformed, "cast at %s, more than %s ahead of this clock", qc.FormatCastAt(cast), maxClockSkew)
	}
	a.consumed[rv.GetNonce()] = deadline
	return Vote{Region: rv.GetRegion(), Round: rv.GetRound(), Verdict: verdict, Reason: rv.GetReason(),
		Counter: rv.GetCounter(), Signature: rv.GetSignature(), KeyID: rv.GetKeyId()}, nil
}
