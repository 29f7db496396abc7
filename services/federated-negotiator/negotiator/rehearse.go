// rehearse.go holds RehearseNegotiation: a negotiation played in memory with the
// regions' agents for the sim-canary's whole-chain dry run. It uses the same agents,
// offers, signature checks, quorum rules and counter merge as a real negotiation
// (run.go), and stores, announces and counts nothing.

package negotiator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	negotiatorv1 "github.com/decision-fabric/fabric/gen/go/decisionfabric/negotiator/v1"
	"github.com/decision-fabric/fabric/internal/auth"
	manifestpkg "github.com/decision-fabric/fabric/internal/manifest"
	"github.com/decision-fabric/fabric/internal/store"
)

// validateRehearse checks a RehearseNegotiationRequest.
func validateRehearse(req any) error {
	r := req.(*negotiatorv1.RehearseNegotiationRequest)
	if err := validateProposalAndRule(r.GetProposalId(), r.GetQuorumRule()); err != nil {
		return err
	}
	if d := r.GetTimeoutMs(); d != 0 && (d < 1 || d > maxDeadlineMS) {
		return invalid("timeout_ms %d: want 1-%d (or 0 for the decision timeout)", d, maxDeadlineMS)
	}
	if r.GetManifest() == nil {
		return invalid("manifest is required")
	}
	return nil
}

// RehearseNegotiation implements the RPC: rounds in memory until agreement, rejection,
// the last round or the timeout.
func (s *Service) RehearseNegotiation(ctx context.Context, req *negotiatorv1.RehearseNegotiationRequest) (*negotiatorv1.RehearseNegotiationResponse, error) {
	tenant, err := auth.Tenant(ctx)
	if err != nil {
		return nil, err
	}
	offer := req.GetManifest()
	if offer == nil {
		return nil, status.Error(codes.InvalidArgument, "manifest is required")
	}
	_, digest, err := manifestpkg.Canonical(offer)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "manifest: %v", err)
	}
	rule := req.GetQuorumRule()
	if rule == negotiatorv1.QuorumRule_QUORUM_RULE_UNSPECIFIED {
		rule = s.deps.Regions.TenantRule(tenant)
	}
	regions, err := s.participants(tenant, offer)
	if err != nil {
		return nil, err
	}
	timeout := s.deps.DecisionTimeout
	if t := time.Duration(req.GetTimeoutMs()) * time.Millisecond; t > 0 && t < timeout {
		timeout = t
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	weights := make([]RegionWeight, len(regions))
	keys := make(map[string]voterKey, len(regions))
	for i, r := range regions {
		weights[i] = RegionWeight{Region: r.Region, Weight: r.Weight}
		if keys[r.Region], err = parseVoterKey(r.PublicKey); err != nil {
			return nil, status.Errorf(codes.Internal, "region %s: %v", r.Region, err)
		}
	}
	out := &negotiatorv1.RehearseNegotiationResponse{QuorumRule: rule}
	// Offers carry a fresh negotiation id (never stored) and the rehearsal's deadline,
	// as a real negotiation's do: regions that run as processes refuse an id that is
	// not a ULID and a deadline already passed, so a placeholder would make every
	// rehearsal over remote regions expire.
	rehearsalID, deadline := ulid.Make().String(), s.now().Add(timeout)
	maxRounds := max(s.deps.Regions.MaxRounds, 1)
	for round := int32(1); ; round++ {
		out.Rounds = round
		o := Offer{NegotiationID: rehearsalID, TenantID: tenant, ProposalID: req.GetProposalId(),
			ProposalDigest: digest, Round: round, Manifest: offer, Deadline: deadline}
		votes := s.rehearseRound(ctx, o, regions, keys, rule, weights)
		for _, v := range votes {
			pv := &negotiatorv1.Vote{Region: v.Region, Round: v.Round, Verdict: v.Verdict, Reason: truncate(cleanText(v.Reason), maxReasonLen),
				Counter: v.Counter, Signature: v.Signature, KeyId: v.KeyID, CastAt: timestamppb.New(s.now())}
			out.Votes = append(out.Votes, pv)
		}
		out.Accept, out.Reject, out.Counter, out.Abstain = countVerdicts(votes)
		outcome, reason := Tally(rule, weights, votes)
		switch {
		case outcome == OutcomeAgreed:
			out.State, out.FinalManifest, out.Reason = negotiatorv1.NegotiationState_NEGOTIATION_STATE_AGREED, offer, reason
			return out, nil
		case outcome == OutcomeRejected:
			out.State, out.Reason = negotiatorv1.NegotiationState_NEGOTIATION_STATE_REJECTED, reason
			return out, nil
		case ctx.Err() != nil:
			out.State = negotiatorv1.NegotiationState_NEGOTIATION_STATE_EXPIRED
			out.Reason = fmt.Sprintf("the rehearsal's %s passed in round %d with %d of %d votes in", timeout, round, len(votes), len(regions))
			return out, nil
		case round >= maxRounds:
			out.State = negotiatorv1.NegotiationState_NEGOTIATION_STATE_REJECTED
			out.Reason = fmt.Sprintf("no agreement after %d rounds: %s", round, reason)
			return out, nil
		}
		next, changes := MergeCounters(rule, weights, offer, votes)
		if len(changes) == 0 {
			out.State, out.Reason = negotiatorv1.NegotiationState_NEGOTIATION_STATE_REJECTED, "the counter-offers cannot move the offer: "+reason
			return out, nil
		}
		offer = next
	}
}

// rehearseRound asks every region for its vote on o, checked as a real round's votes
// are, until Tally decides the round, every region answered, or ctx ends.
func (s *Service) rehearseRound(ctx context.Context, o Offer, regions []store.NegotiationRegion, keys map[string]voterKey,
	rule negotiatorv1.QuorumRule, weights []RegionWeight) []Vote {
	rctx, cancel := context.WithCancel(ctx)
	var asking sync.WaitGroup
	defer func() { cancel(); asking.Wait() }()
	results := make(chan Vote, len(regions))
	expected := 0
	for _, r := range regions {
		agent, ok := s.agents[r.Region]
		if !ok {
			continue
		}
		expected++
		asking.Add(1)
		go func() {
			defer asking.Done()
			s.ask(rctx, agent, keys[r.Region], o, results)
		}()
	}
	var votes []Vote
	for len(votes) < expected {
		select {
		case <-ctx.Done():
			return votes
		case v := <-results:
			votes = append(votes, v)
			if outcome, _ := Tally(rule, weights, votes); outcome != OutcomePending {
				return votes
			}
		}
	}
	return votes
}

// countVerdicts counts a round's votes per verdict.
func countVerdicts(votes []Vote) (accept, reject, counter, abstain int32) {
	for _, v := range votes {
		switch v.Verdict {
		case negotiatorv1.Verdict_VERDICT_ACCEPT:
			accept++
		case negotiatorv1.Verdict_VERDICT_REJECT:
			reject++
		case negotiatorv1.Verdict_VERDICT_COUNTER:
			counter++
		case negotiatorv1.Verdict_VERDICT_ABSTAIN:
			abstain++
		}
	}
	return accept, reject, counter, abstain
}
